"""Reward-model wiring: the first step's Bradley-Terry loss and gradient equal values computed in the test
from the same trunk and head, one unpadded sequence at a time (chosen first, rejected second, the row's
margin subtracted only when use_margin is on) (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers_train import write_prefs
from wiring_helpers import (
    assert_empty_micro_batch_reaches_every_parameter,
    assert_grads_close,
    grads,
    last_token_reward,
    make_trainer,
    stage_args,
)

from rlhfops.measures.intervals import wilson_interval
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.config import RewardConfig
from rlhfops.train.reward import RewardTrainer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rm-wiring")
    model = make_tiny_model_dir(tmp / "tiny")
    return tmp, model, write_prefs(tmp / "p.jsonl", n=12, margin=True)


def _rewards(model, pairs):
    chosen = torch.stack([last_token_reward(model, p.prompt_ids + p.chosen_ids) for p in pairs])
    rejected = torch.stack([last_token_reward(model, p.prompt_ids + p.rejected_ids) for p in pairs])
    return chosen, rejected


@pytest.mark.parametrize("use_margin,accum", [(True, 1), (False, 1), (True, 2)])
def test_first_step_loss_and_gradient_match_an_independent_computation(setup, use_margin, accum):
    tmp, model, prefs = setup
    sets = [f"use_margin={use_margin}", f"gradient_accumulation_steps={accum}"]
    trainer = make_trainer(
        RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, f"rm-{use_margin}-{accum}", sets)
    )
    rows = trainer.rows_for_step(1)
    margins = torch.tensor([r.margin for r in rows])
    assert margins.abs().sum() > 0  # the batch has non-zero margins, so use_margin changes the loss

    loss, sums, units = trainer.accumulate_gradients(1)
    got = grads(trainer.model)
    trainer.optimizer.zero_grad(set_to_none=True)

    rc, rr = _rewards(trainer.model, rows)
    logits = rc - rr - (margins if use_margin else 0.0)
    expected = -F.logsigmoid(logits).mean()
    expected.backward()
    assert units == 4
    assert math.isclose(loss, float(expected), rel_tol=1e-5), (loss, float(expected))
    assert_grads_close(got, grads(trainer.model))
    assert sums["accuracy"] == pytest.approx(float((rc > rr).sum()), abs=1e-9)
    assert sums["reward_margin"] / units == pytest.approx(float((rc - rr).mean()), rel=1e-4, abs=1e-6)
    trainer.cleanup()


def test_eval_accuracy_counts_chosen_above_rejected(setup):
    tmp, model, prefs = setup
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-eval"))
    with torch.no_grad():  # a head that ranks by a fixed direction: some pairs right, some wrong
        trainer.model.head.weight.normal_(generator=torch.Generator().manual_seed(8))
    # attention dropout, as a trained model may have: scoring must run in eval mode (no dropout), even
    # when the model was left in training mode by the last step
    for m in trainer.model.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = 0.5
    trainer.model.train()
    ev = trainer.evaluate()
    trainer.model.eval()
    with torch.no_grad():
        rc, rr = _rewards(trainer.model, trainer.eval_rows)
        tc, tr = _rewards(trainer.model, trainer.train_rows)
    assert ev["eval_pairs"] == len(trainer.eval_rows) == 3
    assert ev["eval_accuracy"] == pytest.approx(float((rc > rr).double().mean()), abs=1e-12)
    assert 0 < int((rc > rr).sum()) < 3 and 0 < int((tc > tr).sum()) < len(trainer.train_rows)
    assert ev["eval_accuracy_ci95"] == list(wilson_interval(int((rc > rr).sum()), 3))
    assert ev["train_accuracy"] == pytest.approx(float((tc > tr).double().mean()), abs=1e-12)
    both = torch.cat([tc, tr])
    assert ev["reward_mean_raw"] == pytest.approx(float(both.mean()), rel=1e-4, abs=1e-5)
    assert ev["reward_std_raw"] == pytest.approx(float(both.std(unbiased=False)), rel=1e-4)
    held = trainer.eval_rows
    lengths = [len(r.chosen_ids) for r in held] + [len(r.rejected_ids) for r in held]
    r = np.corrcoef(torch.cat([rc, rr]).numpy(), np.array(lengths, float))[0, 1]
    assert ev["reward_length_correlation"] == pytest.approx(float(r), rel=1e-4, abs=1e-6)
    trainer.cleanup()


def _mean_reward(model, prompt_ids, reply_ids):
    """``pooling: mean`` computed here: trunk + head on one unpadded sequence, averaged over the reply's
    tokens (not by the code under test)."""
    out = model.trunk(input_ids=torch.tensor([prompt_ids + reply_ids]), use_cache=False)
    per = model.head(out.last_hidden_state.float())[0, :, 0]
    return per[len(prompt_ids) :].mean()


@pytest.mark.parametrize("share_prompt", [True, False])
def test_mean_pooling_reaches_the_loss_in_both_packings(setup, share_prompt):
    """The `pooling` setting: with `mean` the first step's loss and gradient equal the mean of the head's
    outputs over each reply's tokens, computed independently, for the shared-prompt packing (the rejected
    reply's tokens after the chosen ones) and the plain one; and differ from `last`'s."""
    tmp, model, prefs = setup
    sets = ["use_margin=false", "pooling=mean", f"share_prompt={str(share_prompt).lower()}"]
    trainer = make_trainer(
        RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, f"rm-mean-{share_prompt}", sets)
    )
    assert trainer.model.pooling == "mean"
    rows = trainer.rows_for_step(1)
    loss, _, _ = trainer.accumulate_gradients(1)
    got = grads(trainer.model)
    trainer.optimizer.zero_grad(set_to_none=True)
    rc = torch.stack([_mean_reward(trainer.model, r.prompt_ids, r.chosen_ids) for r in rows])
    rr = torch.stack([_mean_reward(trainer.model, r.prompt_ids, r.rejected_ids) for r in rows])
    expected = -F.logsigmoid(rc - rr).mean()
    expected.backward()
    assert math.isclose(loss, float(expected), rel_tol=1e-5), (loss, float(expected))
    assert_grads_close(got, grads(trainer.model))
    trainer.optimizer.zero_grad(set_to_none=True)
    lc, lr_ = _rewards(trainer.model, rows)
    last = float(-F.logsigmoid(lc - lr_).mean())
    assert abs(last - loss) > 1e-4, (last, loss)  # the setting changes the number
    trainer.cleanup()


def test_pooling_is_saved_with_the_model_and_refused_when_unknown(tmp_path):
    from rlhfops.errors import UserError
    from rlhfops.models.heads import META_FILE, RewardModel

    model = RewardModel.from_causal_lm(str(make_tiny_model_dir(tmp_path / "tiny")))
    model.pooling = "mean"
    out = model.save_pretrained(tmp_path / "rm")
    assert RewardModel.from_pretrained(out).pooling == "mean"
    meta = (out / META_FILE).read_text()
    (out / META_FILE).write_text(meta.replace('"pooling": "mean"', '"pooling": "max"'))
    with pytest.raises(UserError, match="pooling 'max' is not one of last, mean"):
        RewardModel.from_pretrained(out)
    (out / META_FILE).write_text(meta.replace(',\n  "pooling": "mean"', ""))
    assert RewardModel.from_pretrained(out).pooling == "last"  # saved before the setting existed
    with pytest.raises(ValueError, match="pooling"):
        RewardConfig(model="m", data="d", pooling="max")


def _checkpointed_layers(trunk):
    return [m for m in trunk.modules() if getattr(m, "gradient_checkpointing", False) is True]


def test_model_settings_reach_the_reward_model(setup):
    """dtype, LoRA, the attention kernel and activation checkpointing each reach the trunk the trainer
    builds: the defaults (float32, no adapter, sdpa, selective checkpointing) and each one changed."""
    import functools

    tmp, model, prefs = setup
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-defaults"))
    trunk = trainer.model.trunk
    assert not hasattr(trunk, "peft_config")
    assert {p.dtype for p in trunk.parameters()} == {torch.float32}
    assert trunk.config._attn_implementation == "sdpa"
    layers = _checkpointed_layers(trunk)
    assert layers and all(isinstance(m._gradient_checkpointing_func, functools.partial) for m in layers)
    assert all("context_fn" in m._gradient_checkpointing_func.keywords for m in layers)  # selective
    trainer.cleanup()

    sets = ["lora.enabled=true", "dtype=bfloat16", "attn_implementation=eager", "gradient_checkpointing=true"]
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-settings", sets))
    trunk = trainer.model.trunk
    assert hasattr(trunk, "peft_config")
    assert any("lora_A" in n for n, p in trunk.named_parameters() if p.requires_grad)
    assert {p.dtype for n, p in trunk.named_parameters() if "lora_" not in n} == {torch.bfloat16}
    assert trunk.config._attn_implementation == "eager"
    layers = _checkpointed_layers(trunk)
    funcs = [m._gradient_checkpointing_func for m in layers]
    assert layers and not any("context_fn" in getattr(f, "keywords", {}) for f in funcs)  # whole layers
    trainer.cleanup()

    sets = ["gradient_checkpointing=false"]
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-nockpt", sets))
    assert _checkpointed_layers(trainer.model.trunk) == []
    trainer.cleanup()


def test_pearson_is_none_for_a_constant_side_or_a_single_value():
    from rlhfops.train.reward import pearson

    x, y = np.array([1.0, 2.0, 4.0]), np.array([3.0, 1.0, 2.0])
    assert pearson(x, y) == pytest.approx(float(np.corrcoef(x, y)[0, 1]), abs=1e-12)
    assert pearson(np.full(3, 2.0), y) is None  # constant rewards
    assert pearson(x, np.full(3, 5.0)) is None  # every response the same length
    assert pearson(np.array([1.0]), np.array([2.0])) is None
    assert pearson(np.array([1.0, 2.0]), np.array([5.0, 3.0])) == pytest.approx(-1.0)  # two values suffice


def test_the_saved_model_carries_the_normalisation_of_the_training_rewards(setup):
    """``save_final``: the written reward model (head included) scores as the trained one, and normalises
    with the mean and std ``evaluate()`` measured over the training responses."""
    from rlhfops.models.heads import RewardModel

    tmp, model, prefs = setup
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-save"))
    with torch.no_grad():
        trainer.model.head.weight.normal_(generator=torch.Generator().manual_seed(7))
        trainer.model.head.bias.fill_(0.25)
    ev = trainer.evaluate()
    assert ev["reward_std_raw"] != 1.0 and ev["reward_mean_raw"] != 0.0
    trainer.save_final(tmp / "rm-save-out")
    saved = RewardModel.from_pretrained(tmp / "rm-save-out").eval()
    assert (tmp / "rm-save-out" / "tokenizer_config.json").is_file()  # the tokenizer is saved with it
    assert float(saved.reward_mean) == pytest.approx(ev["reward_mean_raw"], rel=1e-6)
    assert float(saved.reward_std) == pytest.approx(ev["reward_std_raw"], rel=1e-6)
    row = trainer.train_rows[0]
    with torch.no_grad():
        ids = row.prompt_ids + row.chosen_ids
        assert float(last_token_reward(saved, ids)) == pytest.approx(
            float(last_token_reward(trainer.model, ids)), rel=1e-5, abs=1e-6
        )
    trainer.cleanup()


def test_a_process_without_rows_contributes_a_zero_loss_that_still_reaches_every_parameter(setup):
    """With several processes one may hold no pair of a micro-batch: its loss is 0 but part of the graph,
    so the gradient all-reduce still sees every parameter."""
    tmp, model, prefs = setup
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-empty"))
    assert [len(a) for a in trainer.score_rows([])] == [0, 0]
    assert_empty_micro_batch_reaches_every_parameter(trainer)
    trainer.cleanup()


def test_a_constant_reward_ranks_no_pair_and_keeps_a_unit_std(setup):
    """Every response scored the same (a zero head): a tie is not a correct ranking (accuracies 0), the
    std of 0 is stored as 1 (no division by zero later) and the length correlation is undefined."""
    tmp, model, prefs = setup
    trainer = make_trainer(RewardTrainer, RewardConfig, stage_args(tmp, model, prefs, "rm-const"))
    with torch.no_grad():
        trainer.model.head.weight.zero_()
        trainer.model.head.bias.fill_(0.5)
    ev = trainer.evaluate()
    assert ev["reward_mean_raw"] == 0.5 and ev["reward_std_raw"] == 1.0
    assert ev["train_accuracy"] == 0.0 and ev["eval_accuracy"] == 0.0
    assert ev["reward_length_correlation"] is None
    trainer.cleanup()


def test_without_held_out_pairs_the_correlation_is_over_the_scored_training_pairs(setup):
    tmp, model, prefs = setup
    args = [a for a in stage_args(tmp, model, prefs, "rm-noeval") if not a.startswith("eval_fraction")]
    trainer = make_trainer(RewardTrainer, RewardConfig, [*args, "eval_fraction=0"])
    with torch.no_grad():
        trainer.model.head.weight.normal_(generator=torch.Generator().manual_seed(5))
    ev = trainer.evaluate()
    assert not trainer.eval_rows and "eval_accuracy" not in ev
    rows = trainer.train_rows
    with torch.no_grad():
        tc, tr = _rewards(trainer.model, rows)
    lengths = [len(r.chosen_ids) for r in rows] + [len(r.rejected_ids) for r in rows]
    r = np.corrcoef(torch.cat([tc, tr]).numpy(), np.array(lengths, float))[0, 1]
    assert ev["reward_length_correlation"] == pytest.approx(float(r), rel=1e-4, abs=1e-6)
    trainer.cleanup()
