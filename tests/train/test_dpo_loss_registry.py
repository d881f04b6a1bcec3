"""The DPO loss registry owns each variant: the config and the trainer read it and branch on nothing.

A variant registered only here (``probe``) must be accepted by ``DPOConfig`` and called by the trainer
with exactly the options it declares and the log-prob convention it declares (sums, or means per
completion token); the config's error for an unknown ``loss_type`` lists the registry's names.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from helpers_train import write_prefs
from wiring_helpers import make_trainer, pair_logps, stage_args

from rlhfops.config import load_config
from rlhfops.errors import ConfigError
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train import loss_registry, losses
from rlhfops.train.config import DPOConfig
from rlhfops.train.dpo import DPOTrainer
from rlhfops.train.loss_registry import DPO_VARIANTS, DPOVariant, dpo_variant


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpo-registry")
    model = make_tiny_model_dir(tmp / "tiny")
    return tmp, model, write_prefs(tmp / "p.jsonl", n=12)


def _register_probe(monkeypatch, per_token: bool) -> list[dict]:
    calls: list[dict] = []

    def probe_loss(pc, pr, rc, rr, beta, **options):
        calls.append({"pc": pc.detach().clone(), "rc": rc.clone(), "beta": beta, "options": options})
        return losses.dpo_sigmoid_loss(pc, pr, rc, rr, beta)

    monkeypatch.setattr(losses, "probe_loss", probe_loss, raising=False)
    variant = DPOVariant("probe", "probe_loss", options=("label_smoothing",), per_token_logps=per_token)
    monkeypatch.setitem(loss_registry.DPO_VARIANTS, "probe", variant)
    return calls


@pytest.mark.parametrize("per_token", [True, False], ids=["per-token-means", "sums"])
def test_a_registered_variant_is_configured_and_called_as_it_declares(setup, monkeypatch, per_token):
    tmp, model, prefs = setup
    calls = _register_probe(monkeypatch, per_token)
    extra = ["loss_type=probe", "beta=0.3", "label_smoothing=0.2"]
    trainer = make_trainer(DPOTrainer, DPOConfig, stage_args(tmp, model, prefs, f"probe-{per_token}", extra))
    try:
        trainer.before_train()
        trainer.accumulate_gradients(1)
        assert len(calls) == 1
        call = calls[0]
        assert call["beta"] == 0.3 and call["options"] == {"label_smoothing": 0.2}
        pairs = [r.pair for r in trainer.rows_for_step(1)]
        with torch.no_grad():  # the policy has not moved: policy and reference log-probs agree
            pc, _ = pair_logps(trainer.model.lm, pairs, per_token)
        torch.testing.assert_close(call["pc"], pc, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(call["rc"], pc, rtol=1e-5, atol=1e-6)
    finally:
        trainer.cleanup()


def test_config_accepts_exactly_the_registered_variants(monkeypatch):
    base = ["data=x.jsonl"]
    for name in DPO_VARIANTS:
        assert load_config(DPOConfig, None, [*base, f"loss_type={name}"]).loss_type == name
    with pytest.raises(ConfigError, match=r"^config: loss_type='probe': Input should be 'sigmoid' or 'ipo'$"):
        load_config(DPOConfig, None, [*base, "loss_type=probe"])
    _register_probe(monkeypatch, per_token=False)
    assert load_config(DPOConfig, None, [*base, "loss_type=probe"]).loss_type == "probe"
    with pytest.raises(ConfigError, match=r"loss_type='hinge': Input should be 'sigmoid', 'ipo' or 'probe'$"):
        load_config(DPOConfig, None, [*base, "loss_type=hinge"])


@pytest.mark.parametrize("name", sorted(DPO_VARIANTS))
def test_each_variant_names_a_loss_that_takes_its_options_from_the_config(name):
    variant = dpo_variant(name)
    params = inspect.signature(variant.loss).parameters
    for option in variant.options:
        assert option in DPOConfig.model_fields, option
        assert option in params, (name, option)
    assert losses.get_dpo_loss(name) is variant.loss is losses.DPO_LOSSES[name]


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown DPO loss_type 'hinge'; valid options: ipo, sigmoid"):
        dpo_variant("hinge")


def test_an_option_the_variant_does_not_read_is_refused_not_ignored():
    """label_smoothing is read by the sigmoid loss only: with IPO it would be silently ignored."""
    base = ["data=x.jsonl"]
    sigmoid = load_config(DPOConfig, None, [*base, "loss_type=sigmoid", "label_smoothing=0.1"])
    assert sigmoid.label_smoothing == 0.1
    assert load_config(DPOConfig, None, [*base, "loss_type=ipo", "label_smoothing=0.0"]).loss_type == "ipo"
    message = r"label_smoothing=0.1 is not used by loss_type='ipo' \(only by sigmoid\)"
    with pytest.raises(ConfigError, match=message):
        load_config(DPOConfig, None, [*base, "loss_type=ipo", "label_smoothing=0.1"])


def test_a_registered_variant_is_immutable():
    """Every DPOConfig and trainer shares the registry's entries: one that could be changed in place (a
    plugin setting ``per_token_logps`` on the registered IPO entry) would change every later run."""
    import dataclasses

    variant = dpo_variant("ipo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.per_token_logps = False  # type: ignore[misc]
    assert dpo_variant("ipo").per_token_logps is True
