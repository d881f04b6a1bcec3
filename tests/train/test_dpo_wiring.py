"""DPO settings reach the maths: the first step's loss and gradient equal values computed in the test from
the same model's logits, one sequence at a time (issue 17).

The policy is moved away from its reference (after the reference table is computed), so beta, label
smoothing, the loss type and the order of chosen/rejected all change the numbers; at policy == reference
a sigmoid loss is ln 2 whatever beta and whatever the order.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers_train import write_prefs
from transformers import AutoModelForCausalLM
from wiring_helpers import (
    assert_empty_micro_batch_reaches_every_parameter,
    assert_grads_close,
    completion_logps,
    grads,
    make_trainer,
    pair_logps,
    perturb,
    stage_args,
)

from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.config import DPOConfig
from rlhfops.train.dpo import DPOTrainer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpo-wiring")
    model = make_tiny_model_dir(tmp / "tiny")
    ref_lm = AutoModelForCausalLM.from_pretrained(model).eval()
    return tmp, model, write_prefs(tmp / "p.jsonl", n=12), ref_lm


def _expected_loss(pc, pr, rc, rr, loss_type: str, beta: float, eps: float) -> torch.Tensor:
    h = (pc - rc) - (pr - rr)
    if loss_type == "ipo":
        return ((h - 1 / (2 * beta)) ** 2).mean()
    z = beta * h
    return (-(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)).mean()


CASES = [
    ("sigmoid", 0.1, 0.0, 1),
    ("sigmoid", 0.5, 0.0, 2),
    ("sigmoid", 0.5, 0.3, 1),
    ("ipo", 0.1, 0.0, 1),
    ("ipo", 0.5, 0.0, 2),
]


def _first_step(setup, name: str, extra: list[str], per_token: bool):
    """The trainer's first step from a perturbed policy (reference table from the unchanged model): the
    trainer, its policy, the step's pairs, (loss, sums, units), the gradients, and the pairs' log-probs
    recomputed here (policy with gradient; reference without)."""
    tmp, model, prefs, ref_lm = setup
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, name, extra))
    trainer.before_train()  # reference table from the unchanged starting model
    lm = trainer.model.lm
    perturb(lm, seed=7)
    pairs = [r.pair for r in trainer.rows_for_step(1)]
    step = trainer.accumulate_gradients(1)
    got = grads(lm)
    trainer.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        rc, rr = pair_logps(ref_lm, pairs, per_token)
    pc, pr = pair_logps(lm, pairs, per_token)
    return trainer, lm, pairs, step, got, (pc, pr, rc, rr)


@pytest.mark.parametrize("loss_type,beta,eps,accum", CASES)
def test_first_step_loss_and_gradient_match_an_independent_computation(setup, loss_type, beta, eps, accum):
    extra = [f"loss_type={loss_type}", f"beta={beta}", f"gradient_accumulation_steps={accum}"]
    if eps:
        extra.append(f"label_smoothing={eps}")
    trainer, lm, pairs, (loss, sums, units), got, (pc, pr, rc, rr) = _first_step(
        setup, f"dpo-{loss_type}-{beta}-{eps}-{accum}", extra, per_token=loss_type == "ipo"
    )
    expected = _expected_loss(pc, pr, rc, rr, loss_type, beta, eps)
    expected.backward()
    assert units == len(pairs) == 4
    assert math.isclose(loss, float(expected), rel_tol=1e-5), (loss, float(expected))
    assert_grads_close(got, grads(lm))
    # the policy really moved: the numbers depend on beta (and would on the order of the pair)
    assert abs(float(((pc - rc) - (pr - rr)).abs().mean())) > 1e-2
    # the logged statistics: implicit rewards beta * (log pi - log pi_ref), summed per pair over micro-batches
    chosen, rejected = (beta * (pc - rc)).detach(), (beta * (pr - rr)).detach()
    assert 0 < int((chosen > rejected).sum()) < len(pairs)  # some pairs ranked right, some wrong
    assert sums["reward_accuracy"] == pytest.approx(float((chosen > rejected).sum()), abs=1e-9)
    margin = float((chosen - rejected).mean())
    assert sums["reward_margin"] / units == pytest.approx(margin, rel=1e-4, abs=1e-6)
    assert sums["chosen_reward"] / units == pytest.approx(float(chosen.mean()), rel=1e-4, abs=1e-6)
    assert sums["rejected_reward"] / units == pytest.approx(float(rejected.mean()), rel=1e-4, abs=1e-6)
    trainer.cleanup()


RPO_CASES = [  # loss_type, beta, rpo_alpha, gradient_accumulation_steps, share_prompt
    ("sigmoid", 0.1, 1.0, 1, True),
    ("sigmoid", 0.5, 0.5, 2, False),
    ("ipo", 0.5, 1.0, 2, True),
]


def _nll(lm: torch.nn.Module, prompt: list[int], completion: list[int]) -> torch.Tensor:
    return -completion_logps(lm, prompt, completion).mean()


@pytest.mark.parametrize("loss_type,beta,alpha,accum,share", RPO_CASES)
def test_rpo_alpha_adds_the_chosen_replies_nll_per_token_to_the_first_step(
    setup, loss_type, beta, alpha, accum, share
):
    """``rpo_alpha``: loss = DPO + alpha * mean over pairs of the chosen reply's NLL per chosen token (Pang et
    al. 2024), computed here one sequence at a time from the chosen completion's tokens only; the loss
    without the term, or with the rejected reply's or the prompt's tokens in it, is far from what the
    trainer computed."""
    extra = [f"loss_type={loss_type}", f"beta={beta}", f"gradient_accumulation_steps={accum}"]
    extra += [f"rpo_alpha={alpha}", f"share_prompt={str(share).lower()}"]
    trainer, lm, pairs, (loss, sums, units), got, (pc, pr, rc, rr) = _first_step(
        setup, f"dpo-rpo-{loss_type}-{beta}-{alpha}-{accum}-{share}", extra, per_token=loss_type == "ipo"
    )
    dpo = _expected_loss(pc, pr, rc, rr, loss_type, beta, 0.0)
    nll = torch.stack([_nll(lm, p.prompt_ids, p.chosen_ids) for p in pairs])
    expected = dpo + alpha * nll.mean()
    expected.backward()
    assert units == len(pairs) == 4
    assert len({len(p.chosen_ids) for p in pairs}) > 1  # replies of different lengths: padding in the batch
    assert math.isclose(loss, float(expected), rel_tol=1e-5), (loss, float(expected))
    assert_grads_close(got, grads(lm))
    assert sums["chosen_nll"] / units == pytest.approx(float(nll.mean()), rel=1e-5)
    with torch.no_grad():
        both = torch.stack([_nll(lm, p.prompt_ids, p.chosen_ids + p.rejected_ids) for p in pairs])
        with_prompt = torch.stack(
            [_nll(lm, p.prompt_ids[:1], p.prompt_ids[1:] + p.chosen_ids) for p in pairs]
        )
        summed = torch.stack([-completion_logps(lm, p.prompt_ids, p.chosen_ids).sum() for p in pairs])
        wrong = {
            "term ignored": dpo,
            "rejected tokens in it": dpo + alpha * both.mean(),
            "prompt tokens in it": dpo + alpha * with_prompt.mean(),
            "a token sum, not a mean": dpo + alpha * summed.mean(),
        }
    for what, value in wrong.items():
        assert abs(float(value) - loss) > 1e-3 * abs(loss), what
    trainer.cleanup()


def test_a_negative_rpo_alpha_is_a_one_line_error(setup):
    from rlhfops.config import load_config
    from rlhfops.errors import ConfigError

    tmp, model, prefs, _ = setup
    with pytest.raises(ConfigError, match=r"rpo_alpha=-0.5: .*greater than or equal to 0") as err:
        load_config(DPOConfig, None, stage_args(tmp, model, prefs, "dpo-neg", ["rpo_alpha=-0.5"]))
    assert "\n" not in str(err.value).strip()
    zero = load_config(DPOConfig, None, stage_args(tmp, model, prefs, "dpo-zero", ["rpo_alpha=0"]))
    assert zero.rpo_alpha == 0


def _dropout_and_train_mode(model: torch.nn.Module) -> None:
    """Attention dropout, as a real model may have, with the model left in training mode."""
    for m in model.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = 0.5
    model.train()


def test_implicit_accuracy_and_margin_are_beta_times_the_log_ratio_gap(setup):
    tmp, model, prefs, ref_lm = setup
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, "dpo-acc", ["beta=0.3"]))
    trainer.before_train()
    perturb(trainer.model.lm, seed=7)
    rows = trainer.eval_rows
    got = trainer.implicit_accuracy(rows)
    with torch.no_grad():
        pc, pr = pair_logps(trainer.model.lm, [r.pair for r in rows])
        rc, rr = pair_logps(ref_lm, [r.pair for r in rows])
    m = 0.3 * ((pc - rc) - (pr - rr))
    assert got["pairs"] == len(rows)
    assert 0 < int((m > 0).sum()) < len(rows)  # some pairs ranked right, some wrong
    assert got["accuracy"] == pytest.approx(float((m > 0).double().mean()), abs=1e-12)
    assert got["margin"] == pytest.approx(float(m.mean()), rel=1e-4, abs=1e-6)
    trainer.cleanup()


def test_evaluate_reports_train_and_held_out_implicit_accuracy_with_its_interval(setup):
    """``evaluate()``: the implicit accuracy and margin on the pairs this run trains on and on the held-out
    pairs, each from log-probs computed here, and the Wilson interval of the held-out count."""
    from rlhfops.measures.intervals import wilson_interval

    tmp, model, prefs, ref_lm = setup
    trainer = make_trainer(
        DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, "dpo-eval", ["beta=0.3", "batch_size=2"])
    )
    trainer.before_train()
    at_start = trainer.evaluate()  # policy == reference: every gap is exactly 0, a tie, not a right ranking
    assert at_start["train_accuracy"] == at_start["eval_accuracy"] == 0.0
    assert at_start["train_margin"] == at_start["eval_margin"] == 0.0
    perturb(trainer.model.lm, seed=7)
    _dropout_and_train_mode(trainer.model)  # evaluation must switch dropout off itself
    out = trainer.evaluate()
    trainer.model.eval()
    for prefix, rows in (("train_", trainer.planned_rows()), ("eval_", trainer.eval_rows)):
        pairs = [r.pair for r in rows]
        with torch.no_grad():
            pc, pr = pair_logps(trainer.model.lm, pairs)
            rc, rr = pair_logps(ref_lm, pairs)
        m = 0.3 * ((pc - rc) - (pr - rr))
        assert out[prefix + "pairs"] == len(rows) > 1
        assert 0 < int((m > 0).sum()) < len(rows)
        assert out[prefix + "accuracy"] == pytest.approx(float((m > 0).double().mean()), abs=1e-12)
        assert out[prefix + "margin"] == pytest.approx(float(m.mean()), rel=1e-4, abs=1e-6)
    n = out["eval_pairs"]
    assert out["eval_accuracy_ci95"] == list(wilson_interval(round(out["eval_accuracy"] * n), n))
    trainer.cleanup()


@pytest.mark.parametrize("cap", [3, 0, None])
def test_accuracy_pairs_caps_the_training_pairs_scored_at_the_end(setup, cap, monkeypatch):
    """``accuracy_pairs``: the end-of-run training accuracy scores the first ``cap`` pairs this run used, in
    order (0 = all of them; the default 128 covers this run's pairs whole); the held-out pairs are
    always all scored."""
    tmp, model, prefs, _ = setup
    extra = ["batch_size=2", "max_steps=4"] + ([] if cap is None else [f"accuracy_pairs={cap}"])
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, f"dpo-cap{cap}", extra))
    trainer.before_train()
    planned = trainer.planned_rows()
    assert len(planned) > 3
    seen: list[list] = []
    real = trainer.implicit_accuracy
    monkeypatch.setattr(trainer, "implicit_accuracy", lambda rows: seen.append(list(rows)) or real(rows))
    out = trainer.evaluate()
    want = planned[:cap] if cap else planned
    if cap is None:  # the default (128) is above this run's pairs
        assert DPOConfig.model_fields["accuracy_pairs"].default == 128 > len(planned)
    assert [r.key for r in seen[0]] == [r.key for r in want]
    assert out["train_pairs"] == len(want)
    assert [r.key for r in seen[1]] == [r.key for r in trainer.eval_rows] and out["eval_pairs"] > 0
    trainer.cleanup()


def test_the_reference_table_is_written_once_and_read_back_on_resume(setup):
    """``before_train``: the table of reference log-probs (every planned and held-out pair) is written to
    the run directory; called again (a resumed run) it is read from there, not recomputed from the policy,
    which has moved by then."""
    from rlhfops.train.checkpoint_manifest import load_state
    from rlhfops.train.dpo import REF_FILE

    tmp, model, prefs, ref_lm = setup
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, "dpo-ref", ["batch_size=2"]))
    _dropout_and_train_mode(trainer.model)  # the table must be computed without dropout
    trainer.before_train()
    path = trainer.run.path / REF_FILE
    assert path.is_file() and not list(path.parent.glob(f".{REF_FILE}*"))
    rows = trainer.planned_rows() + trainer.eval_rows
    assert set(trainer.ref) == {r.key for r in rows}
    with torch.no_grad():
        rc, rr = pair_logps(ref_lm, [r.pair for r in rows])
    table = load_state(path)
    got = torch.tensor([table[r.key] for r in rows])
    torch.testing.assert_close(got, torch.stack([rc, rr], 1), rtol=1e-5, atol=1e-5)

    perturb(trainer.model.lm, seed=4)
    trainer.ref = {}
    trainer.before_train()
    assert trainer.ref == table
    trainer.cleanup()


def test_a_process_without_rows_contributes_a_zero_loss_that_still_reaches_every_parameter(setup):
    tmp, model, prefs, _ = setup
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, "dpo-empty"))
    assert trainer.implicit_accuracy([]) == {"accuracy": 0.0, "margin": 0.0, "pairs": 0}
    assert_empty_micro_batch_reaches_every_parameter(trainer)
    trainer.cleanup()


def test_the_final_model_is_the_trained_policy(setup):
    tmp, model, prefs, _ = setup
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, "dpo-save"))
    perturb(trainer.model.lm, seed=2)
    trainer.save_final(tmp / "dpo-save-out")
    saved = AutoModelForCausalLM.from_pretrained(tmp / "dpo-save-out").eval()
    ids = torch.tensor([trainer.train_rows[0].pair.prompt_ids])
    with torch.no_grad():
        want = trainer.model.lm.eval()(ids).logits
        torch.testing.assert_close(saved(ids).logits, want, rtol=1e-5, atol=1e-5)
    assert (tmp / "dpo-save-out" / "tokenizer_config.json").is_file()
    # training turned the KV cache off (activation checkpointing); the saved model has it on again
    assert trainer.model.lm.config.use_cache is False and saved.config.use_cache is True
    trainer.cleanup()
