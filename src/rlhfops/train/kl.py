"""KL-divergence estimators and KL-coefficient controllers for RL fine-tuning.

Per-token estimators of ``KL(pi || pi_ref)`` from samples ``y ~ pi`` (Schulman 2020, "Approximating
KL Divergence", http://joschu.net/blog/kl-approx.html). With ``log r = log pi_ref(y) - log pi(y)``:

- k1 = -log r = log pi - log pi_ref            unbiased, high variance, can be negative;
- k2 = 0.5 (log r)^2                           biased, low variance, >= 0;
- k3 = (r - 1) - log r                         unbiased, low variance, >= 0.

All estimators take [B, T] (any shape) tensors and return the same shape; reduce them with a mask.
The controllers hold the beta that multiplies the KL penalty in the token rewards (Ziegler et al.
2019, eq. 2 for the adaptive one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rlhfops.errors import ConfigError

__all__ = [
    "KL_ESTIMATORS",
    "AdaptiveKLController",
    "FixedKLController",
    "get_kl_controller_from_state",
    "get_kl_estimator",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "sequence_kl",
]


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 estimator (Schulman 2020): ``logp - ref_logp``. Shapes: [...] -> [...]."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 estimator (Schulman 2020): ``0.5 (logp - ref_logp)^2``. Shapes: [...] -> [...]."""
    return 0.5 * (logp - ref_logp).square()


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator (Schulman 2020): ``(r - 1) - log r`` with ``r = exp(ref_logp - logp)``.

    Computed as ``expm1(d) - d`` with ``d = ref_logp - logp`` for accuracy near r = 1. No clamping:
    very large ``d`` (> ~88 in float32) overflows to inf, which the trainer's finiteness check
    reports. Shapes: [...] -> [...]; always >= 0.
    """
    d = ref_logp - logp
    return torch.expm1(d) - d


def sequence_kl(logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """The KL to the reference per response, as reported to people: ``sum_t k3_t`` over valid tokens.

    By the chain rule ``KL(pi(.|x) || ref(.|x)) = E_y~pi [sum_t KL_t(y_<t)]``, and k3 is an unbiased
    estimate of each per-token term given the prefix, so the sum is an unbiased estimate of the sequence
    KL -- like the summed k1 (``sum_t log pi - log ref``), which is what the penalty uses -- but every
    term is >= 0, so the estimate is never negative. The summed k1 over a few sampled replies often is
    (a report once printed "KL to the reference: -0.017"), which reads as a bug. Computed in float64.

    Shapes: logp, ref_logp, mask [B, T] -> [B].
    """
    k3 = kl_k3(logp.double(), ref_logp.double())
    return (k3 * mask.to(k3.dtype)).sum(-1).clamp(min=0.0)  # the clamp only removes -0.0 / rounding


KLEstimator = Callable[[Tensor, Tensor], Tensor]

KL_ESTIMATORS: dict[str, KLEstimator] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def get_kl_estimator(name: str) -> KLEstimator:
    """The KL estimator registered under ``name``; ConfigError naming the valid options otherwise."""
    try:
        return KL_ESTIMATORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown KL estimator {name!r}; valid options: {', '.join(sorted(KL_ESTIMATORS))}"
        ) from None


class FixedKLController:
    """A constant KL coefficient beta."""

    kind = "fixed"

    def __init__(self, beta: float) -> None:
        if not beta >= 0:
            raise ConfigError(f"KL coefficient beta must be >= 0, got {beta}")
        self.value = float(beta)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Beta does not change; returns it."""
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, self.kind)
        self.value = float(state["value"])


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, eq. 2).

    ``e = clip(KL / target - 1, -0.2, 0.2)``; ``beta <- beta (1 + e * n_steps / horizon)``.
    Beta grows when the measured KL is above ``target`` and shrinks when below, by at most 20% per
    ``horizon`` steps. ``n_steps`` counts what the horizon counts (TRL and Ziegler et al. count
    samples/episodes in the batch).
    """

    kind = "adaptive"

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        if not init_beta > 0:
            raise ConfigError(f"adaptive KL init_beta must be > 0, got {init_beta}")
        if not target > 0:
            raise ConfigError(f"adaptive KL target must be > 0, got {target}")
        if not horizon > 0:
            raise ConfigError(f"adaptive KL horizon must be > 0, got {horizon}")
        self.value = float(init_beta)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Update beta from the KL measured on the last batch; returns the new beta.

        ConfigError when ``n_steps`` is 5 x ``horizon`` or more: a KL far below target would then
        multiply beta by ``1 - 0.2 n_steps / horizon <= 0``, and a negative beta rewards divergence.
        """
        if n_steps * 0.2 >= self.horizon:
            raise ConfigError(
                f"adaptive KL horizon {self.horizon:g} is too small for {n_steps} samples per update: "
                f"beta would shrink by a factor 1 - 0.2 * {n_steps} / {self.horizon:g} <= 0 "
                f"(a negative KL penalty); use a horizon above {0.2 * n_steps:g}"
            )
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, self.kind)
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.horizon = float(state["horizon"])


def _check_kind(state: dict[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ConfigError(
            f"checkpoint holds a {state.get('kind')!r} KL controller but the config asks for {kind!r}; "
            "resume with the same kl settings or start a new run"
        )


def get_kl_controller_from_state(state: dict[str, Any]) -> AdaptiveKLController | FixedKLController:
    """Rebuild a controller from ``state_dict()`` output (for resuming without the config)."""
    if state.get("kind") == "adaptive":
        ctl: AdaptiveKLController | FixedKLController = AdaptiveKLController(
            state["value"], state["target"], state["horizon"]
        )
    else:
        ctl = FixedKLController(state["value"])
    ctl.load_state_dict(state)
    return ctl
