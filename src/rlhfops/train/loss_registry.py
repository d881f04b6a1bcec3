"""The DPO-family loss registry: one entry per variant, owning everything that differs between variants.

An entry names its loss function (in ``rlhfops.train.losses``), the config options it reads (passed to
the loss as keyword arguments) and how it wants its sequence log-probs (sums over completion tokens, or
means per completion token). ``DPOConfig`` takes its valid ``loss_type`` values from here and
``DPOTrainer`` asks the entry what to do, so neither contains a per-variant branch: a new variant is a
new loss function and a new entry.

Importing this module is cheap (no torch): the loss function is looked up when it is first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlhfops.errors import ConfigError

if TYPE_CHECKING:
    from rlhfops.train.losses import DPOLossOutput

__all__ = ["DPO_VARIANTS", "DPOVariant", "dpo_variant", "dpo_variant_names"]


@dataclass(frozen=True)
class DPOVariant:
    """One DPO-family loss and what it needs from the trainer."""

    name: str
    #: name of the loss function in ``rlhfops.train.losses``; called as
    #: ``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, **options)``
    function: str
    #: ``DPOConfig`` fields this variant reads, passed to the loss function under the same names
    options: tuple[str, ...] = ()
    #: True: the loss wants the mean log-prob per completion token, False: the sum over the completion
    per_token_logps: bool = False

    @property
    def loss(self) -> Callable[..., DPOLossOutput]:
        """The loss function (imports torch on first use)."""
        from rlhfops.train import losses

        return getattr(losses, self.function)

    def option_values(self, config: Any) -> dict[str, Any]:
        """``{option: config.option}`` for the options this variant reads."""
        return {name: getattr(config, name) for name in self.options}


DPO_VARIANTS: dict[str, DPOVariant] = {
    v.name: v
    for v in (
        # Rafailov et al. 2023, eq. 7; label_smoothing = conservative DPO (Mitchell 2023)
        DPOVariant("sigmoid", "dpo_sigmoid_loss", options=("label_smoothing",)),
        # Azar et al. 2023, eq. 17, on mean per-token log-probs as in the authors' code and TRL
        DPOVariant("ipo", "ipo_loss", per_token_logps=True),
    )
}


def dpo_variant_names() -> list[str]:
    """The registered ``loss_type`` values, in registration order."""
    return list(DPO_VARIANTS)


def dpo_variant(name: str) -> DPOVariant:
    """The variant registered under ``name``; ConfigError naming the valid options otherwise."""
    try:
        return DPO_VARIANTS[name]
    except KeyError:
        valid = ", ".join(sorted(DPO_VARIANTS))
        raise ConfigError(f"unknown DPO loss_type {name!r}; valid options: {valid}") from None
