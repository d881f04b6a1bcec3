"""Bradley-Terry, DPO (sigmoid, cDPO label smoothing) and IPO losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfops.errors import ConfigError
from rlhfops.train.losses import (
    DPO_LOSSES,
    add_nll_term,
    bradley_terry_loss,
    chosen_nll,
    dpo_sigmoid_loss,
    get_dpo_loss,
    ipo_loss,
)


def close(actual, expected, rtol=1e-5, atol=1e-7):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def t(*xs, grad=False):
    return torch.tensor(xs, dtype=torch.float32, requires_grad=grad)


# softplus(x) = ln(1 + e^x) = -log sigmoid(-x)
#   softplus(-2) = ln(1.135335283) = 0.126928011   softplus(0) = ln 2 = 0.693147181
#   softplus(2)  = 2 + softplus(-2) = 2.126928011  softplus(-1) = ln(1.367879441) = 0.313261687
#   sigmoid(-2) = 0.119202922, sigmoid(-1) = 0.268941421


def test_bradley_terry_hand_values_and_gradient():
    chosen, rejected = t(2.0, 0.0, 1.0, grad=True), t(0.0, 0.0, 3.0, grad=True)
    out = bradley_terry_loss(chosen, rejected)
    # diff = [2, 0, -2]; loss = (softplus(-2) + softplus(0) + softplus(2)) / 3
    #      = (0.126928011 + 0.693147181 + 2.126928011) / 3 = 0.982334401
    close(out.loss, 0.982334401)
    close(out.accuracy, 1 / 3)  # only the first pair; the tie (diff 0) counts as wrong
    close(out.mean_margin, 0.0)
    out.loss.backward()
    # dL/dr_c,i = -sigmoid(-diff_i) / 3 = -[0.119202922, 0.5, 0.880797078] / 3
    close(chosen.grad, [-0.039734307, -0.166666667, -0.293599026])
    close(rejected.grad, [0.039734307, 0.166666667, 0.293599026])
    assert not out.accuracy.requires_grad and not out.mean_margin.requires_grad


def test_bradley_terry_margin_llama2():
    out = bradley_terry_loss(t(2.0, 0.0, 1.0), t(0.0, 0.0, 3.0), margin=t(1.0, 0.0, 0.0))
    # logits = diff - margin = [1, 0, -2]: (softplus(-1) + ln2 + softplus(2)) / 3
    #        = (0.313261687 + 0.693147181 + 2.126928011) / 3 = 1.044445626
    close(out.loss, 1.044445626)
    close(out.mean_margin, 0.0)  # metric uses the raw reward difference, not the label margin


# One DPO batch used below, beta = 0.5:
#   pair 0: pc=-1, rc=-2, pr=-3, rr=-2 -> h = (-1+2) - (-3+2) = 1 + 1 = 2 -> beta h = 1
#   pair 1: pc=-2, rc=-2, pr=-2, rr=-2 -> h = 0                          -> beta h = 0
PC, PR, RC, RR = (-1.0, -2.0), (-3.0, -2.0), (-2.0, -2.0), (-2.0, -2.0)


def test_dpo_sigmoid_hand_values_and_gradient():
    pc = t(*PC, grad=True)
    out = dpo_sigmoid_loss(pc, t(*PR), t(*RC), t(*RR), beta=0.5)
    close(out.losses, [0.313261687, 0.693147181])  # softplus(-1), softplus(0)
    close(out.loss, 0.503204434)  # mean
    close(out.chosen_rewards, [0.5, 0.0])  # 0.5 * (pc - rc) = 0.5 * [1, 0]
    close(out.rejected_rewards, [-0.5, 0.0])  # 0.5 * (pr - rr) = 0.5 * [-1, 0]
    close(out.reward_accuracy, 0.5)
    close(out.reward_margin, 0.5)  # mean([1, 0])
    out.loss.backward()
    # dL/dpc_i = -beta sigmoid(-beta h_i) / B = -0.5 * [0.268941421, 0.5] / 2
    close(pc.grad, [-0.067235355, -0.125])


def test_dpo_conservative_label_smoothing():
    # cDPO: (1-e) softplus(-x) + e softplus(x) = softplus(-x) + e x, with x = beta h = [1, 0], e = 0.1
    #   pair 0: 0.313261687 + 0.1 = 0.413261687 ; pair 1: ln 2 = 0.693147181
    out = dpo_sigmoid_loss(t(*PC), t(*PR), t(*RC), t(*RR), beta=0.5, label_smoothing=0.1)
    close(out.losses, [0.413261687, 0.693147181])
    with pytest.raises(ConfigError, match="label_smoothing"):
        dpo_sigmoid_loss(t(*PC), t(*PR), t(*RC), t(*RR), beta=0.5, label_smoothing=0.5)
    with pytest.raises(ConfigError, match="beta"):
        dpo_sigmoid_loss(t(*PC), t(*PR), t(*RC), t(*RR), beta=0.0)


def test_ipo_hand_values_and_gradient():
    # beta = 0.5 -> target gap 1 / (2 beta) = 1
    #   pair 0: pc=-1, rc=-2, pr=-3, rr=-1 -> h = 1 - (-2) = 3   -> (3 - 1)^2 = 4
    #   pair 1: pc=-1, rc=-1.5, pr=-2, rr=-2 -> h = 0.5 - 0 = 0.5 -> (0.5 - 1)^2 = 0.25
    pc = t(-1.0, -1.0, grad=True)
    out = ipo_loss(pc, t(-3.0, -2.0), t(-2.0, -1.5), t(-1.0, -2.0), beta=0.5)
    close(out.losses, [4.0, 0.25])
    close(out.loss, 2.125)
    close(out.chosen_rewards, [0.5, 0.25])  # 0.5 * [1, 0.5]
    close(out.rejected_rewards, [-1.0, 0.0])  # 0.5 * [-2, 0]
    close(out.reward_accuracy, 1.0)
    out.loss.backward()
    close(pc.grad, [2.0, -0.5])  # 2 (h - 1) / B = [2*2/2, 2*(-0.5)/2]
    with pytest.raises(ConfigError, match="sigmoid DPO loss only"):
        ipo_loss(pc, t(-3.0, -2.0), t(-2.0, -1.5), t(-1.0, -2.0), beta=0.5, label_smoothing=0.1)


def test_dpo_with_the_chosen_replies_nll_hand_values_and_gradient():
    """RPO (Pang et al. 2024): loss_i = dpo_i + alpha * (-sum log pi(y_w) / |y_w|), NLL per chosen token."""
    # the DPO batch above (beta 0.5): dpo losses [softplus(-1), ln 2] = [0.313261687, 0.693147181]
    # chosen sums PC = [-1, -2] over 4 and 1 tokens -> nll = [0.25, 2.0]; alpha = 0.5 adds [0.125, 1.0]
    pc = t(*PC, grad=True)
    nll = chosen_nll(pc, torch.tensor([4, 1]))
    close(nll, [0.25, 2.0])
    dpo = dpo_sigmoid_loss(pc, t(*PR), t(*RC), t(*RR), beta=0.5)
    out = add_nll_term(dpo, nll, 0.5)
    close(out.losses, [0.438261687, 1.693147181])
    close(out.loss, 1.065704434)  # mean
    close(out.chosen_rewards, [0.5, 0.0])  # the implicit rewards are DPO's, unchanged
    close(out.reward_margin, 0.5)
    out.loss.backward()
    # dL/dpc_i = DPO's [-0.067235355, -0.125] + alpha * (-1 / |y_w,i|) / B = -0.5 * [0.25, 1] / 2
    close(pc.grad, [-0.129735355, -0.375])
    assert add_nll_term(dpo, nll, 0.0) is dpo  # off: the same tensors, no number changes
    with pytest.raises(ConfigError, match=r"^rpo_alpha must be >= 0, got -0.1$"):
        add_nll_term(dpo, nll, -0.1)
    with pytest.raises(ValueError, match="differ"):
        add_nll_term(dpo, nll[:1], 0.5)
    with pytest.raises(ValueError, match=">= 1 completion token"):
        chosen_nll(pc, torch.tensor([4, 0]))


def test_dpo_registry():
    assert set(DPO_LOSSES) == {"sigmoid", "ipo"}
    assert get_dpo_loss("sigmoid") is dpo_sigmoid_loss
    assert get_dpo_loss("ipo") is ipo_loss
    with pytest.raises(ConfigError, match=r"unknown DPO loss_type 'hinge'; valid options: ipo, sigmoid"):
        get_dpo_loss("hinge")


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        dpo_sigmoid_loss(t(1.0, 2.0), t(1.0), t(1.0, 2.0), t(1.0, 2.0), beta=0.1)
    with pytest.raises(ValueError):
        bradley_terry_loss(t(1.0, 2.0), t(1.0))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-50, 50), min_size=4, max_size=4),
    st.floats(0.01, 5.0),
    st.floats(-20, 20),
)
def test_dpo_depends_only_on_log_ratio_gap(vals, beta, shift):
    """Adding the same constant to a sequence's policy and reference log-probs changes nothing; the
    loss is symmetric: swapping chosen/rejected maps x -> -x, so loss(x) - loss(-x) = -x."""
    pc, pr, rc, rr = (torch.tensor([v], dtype=torch.float64) for v in vals)
    base = dpo_sigmoid_loss(pc, pr, rc, rr, beta)
    moved = dpo_sigmoid_loss(pc + shift, pr, rc + shift, rr, beta)
    torch.testing.assert_close(moved.loss, base.loss, rtol=1e-9, atol=1e-9)
    swapped = dpo_sigmoid_loss(pr, pc, rr, rc, beta)
    x = beta * ((pc - rc) - (pr - rr))
    torch.testing.assert_close(base.loss - swapped.loss, -x[0], rtol=1e-9, atol=1e-9)
    assert math.isfinite(float(base.loss))
