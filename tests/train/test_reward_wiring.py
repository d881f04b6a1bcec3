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
from wiring_helpers import assert_grads_close, grads, last_token_reward, make_trainer, stage_args

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


@pytest.mark.parametrize("use_margin", [True, False])
def test_first_step_loss_and_gradient_match_an_independent_computation(setup, use_margin):
    tmp, model, prefs = setup
    trainer = make_trainer(
        RewardTrainer,
        RewardConfig,
        stage_args(tmp, model, prefs, f"rm-{use_margin}", [f"use_margin={use_margin}"]),
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
        trainer.model.head.weight.normal_(generator=torch.Generator().manual_seed(5))
    ev = trainer.evaluate()
    with torch.no_grad():
        rc, rr = _rewards(trainer.model, trainer.eval_rows)
        tc, tr = _rewards(trainer.model, trainer.train_rows)
    assert ev["eval_pairs"] == len(trainer.eval_rows) == 3
    assert ev["eval_accuracy"] == pytest.approx(float((rc > rr).float().mean()), abs=1e-9)
    assert ev["train_accuracy"] == pytest.approx(float((tc > tr).float().mean()), abs=1e-9)
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
