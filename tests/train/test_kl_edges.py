"""KL controllers at their edges (issue 17, mutation survivors of train/kl.py)."""

from __future__ import annotations

import pytest

from rlhfops.errors import ConfigError
from rlhfops.train.kl import AdaptiveKLController, FixedKLController, get_kl_controller_from_state


def test_a_checkpoint_with_an_unknown_controller_kind_is_refused():
    # neither "adaptive" nor "fixed": rebuilt as fixed, then its kind check must refuse it
    with pytest.raises(ConfigError, match="'proportional' KL controller"):
        get_kl_controller_from_state({"kind": "proportional", "value": 0.1})
    with pytest.raises(ConfigError, match="None KL controller"):
        get_kl_controller_from_state({"value": 0.1})


def test_a_fixed_controller_refuses_an_adaptive_checkpoint():
    fixed = FixedKLController(0.05)
    state = AdaptiveKLController(0.1, 6.0, 1000).state_dict()
    with pytest.raises(ConfigError, match="'adaptive' KL controller but the config asks for 'fixed'"):
        fixed.load_state_dict(state)
    assert fixed.value == 0.05


def test_fixed_beta_zero_is_allowed_below_zero_is_not():
    assert FixedKLController(0.0).value == 0.0  # no KL penalty at all is a valid choice
    for bad in (-1e-12, float("nan")):
        with pytest.raises(ConfigError, match="beta must be >= 0"):
            FixedKLController(bad)


@pytest.mark.parametrize("field", ["value", "target", "horizon"])
def test_a_checkpoint_with_a_bad_adaptive_setting_names_it(field):
    # each of the three is checked under its own name when the controller is rebuilt from a checkpoint
    state = {"kind": "adaptive", "value": 0.1, "target": 6.0, "horizon": 1000.0, field: 0.0}
    name = {"value": "init_beta"}.get(field, field)
    with pytest.raises(ConfigError, match=f"adaptive KL {name} must be > 0"):
        get_kl_controller_from_state(state)


def test_adaptive_settings_below_one_are_valid():
    # the rule is > 0, not >= 1: a fractional horizon (in updates) or target is accepted as given
    ctl = AdaptiveKLController(init_beta=0.5, target=0.5, horizon=0.5)
    assert (ctl.value, ctl.target, ctl.horizon) == (0.5, 0.5, 0.5)
