"""One typed config per training stage.

Every field is documented; ``rlhfops train STAGE --help`` lists them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rlhfops.config import StageConfig
from rlhfops.data.truncate import TRUNCATION_HELP, Truncation
from rlhfops.errors import ConfigError
from rlhfops.train.loss_registry import DPO_VARIANTS, dpo_variant, dpo_variant_names


class LoraConfig(StageConfig):
    """LoRA (peft) settings; ``enabled: false`` means full fine-tuning."""

    enabled: bool = Field(False, description="Train a LoRA adapter instead of all weights.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules to adapt: 'all-linear' or a list of module names."
    )


class TrainConfig(StageConfig):
    """Settings shared by every stage."""

    model: str = Field(
        "smollm2-135m-instruct",
        description="Starting model: 'smollm2-135m-instruct' (bundled) or a local Hugging Face directory.",
    )
    data: str = Field(..., description="Training data file (JSONL, JSON or Parquet).")
    eval_data: str | None = Field(
        None, description="Held-out data file; when empty, eval_fraction of `data` is held out."
    )
    eval_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of `data` held out for evaluation when eval_data is empty."
    )
    output_dir: str | None = Field(
        None, description="Run directory; default runs/<stage>-<UTC time> under the current directory."
    )
    seed: int = Field(0, description="Seed for data order, splits and initialisation.")
    max_length: int = Field(
        512,
        ge=16,
        description="Longest prompt+response in tokens; a longer row is handled as `truncation` says.",
    )
    truncation: Truncation = Field("error", description=TRUNCATION_HELP)
    batch_size: int = Field(
        8, ge=1, description="Examples (or pairs) per optimizer step, over all processes."
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step; batch_size must divide evenly."
    )
    epochs: float = Field(
        1.0, gt=0, description="Passes over the training data (ignored when max_steps is set)."
    )
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of steps with linear warm-up.")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field(
        "linear", description="Learning-rate decay after warm-up."
    )
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0 disables).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype (bfloat16 on GPUs that support it)."
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Attention kernel (flash_attention_2 needs a GPU and the flash-attn package)."
    )
    gradient_checkpointing: bool | Literal["selective"] = Field(
        "selective",
        description=(
            "Recompute activations in the backward pass instead of keeping them. selective (the default): "
            "every decoder layer keeps its matmul and attention outputs and recomputes only the cheap "
            "elementwise ops (norms, activation, rotary) -- with the bundled model and 4 pairs of ~200 "
            "tokens about 1 GB less peak memory than false, for ~8% more time per step (single thread; "
            "~20% for an SFT step of 8 demonstrations of ~110 tokens; ~25% in two-thread steps). true: every "
            "layer is rerun whole (least memory, about one extra forward pass per step; TRL's default). "
            "false: keep everything. In the RL stage it applies to the update's forward and backward "
            "(generation and scoring run without gradients). The numbers are the same in every mode."
        ),
    )
    checkpoint_full_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "With gradient_checkpointing: selective, the share of decoder layers (evenly spaced) rerun "
            "whole in the backward pass, for a tighter memory budget; 0 reruns none, 1 is the same as true."
        ),
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings.")
    chat_template: str | None = Field(
        None, description="Jinja chat template to use when the model has none (or to override it)."
    )
    save_every: int = Field(50, ge=1, description="Write a checkpoint every N optimizer steps.")
    keep_last: int = Field(2, ge=1, description="Checkpoints to keep (oldest removed).")
    log_every: int = Field(1, ge=1, description="Write metrics every N steps.")
    progress: bool = Field(True, description="Show a progress bar.")

    @model_validator(mode="after")
    def _check_batch(self) -> TrainConfig:
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(
                f"batch_size={self.batch_size} is not divisible by "
                f"gradient_accumulation_steps={self.gradient_accumulation_steps}"
            )
        return self

    def checkpointing(self):
        """What the model loaders take: ``False``, ``True`` or the selective settings."""
        if self.gradient_checkpointing == "selective":
            from rlhfops.models.checkpointing import SelectiveCheckpointing

            return SelectiveCheckpointing(self.checkpoint_full_share)
        return self.gradient_checkpointing


class SFTConfig(TrainConfig):
    """Supervised fine-tuning on demonstrations: loss on completion tokens only."""

    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate (AdamW).")
    packing: bool = Field(True, description="Pack several examples per row (no compute spent on padding).")


class RewardConfig(TrainConfig):
    """Reward model: causal-LM trunk + scalar head, Bradley-Terry loss."""

    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    use_margin: bool = Field(True, description="Subtract the row's `margin` inside the Bradley-Terry loss.")
    pooling: Literal["last", "mean"] = Field(
        "last",
        description="How a response's score is read from the head's per-token outputs: `last` (its last "
        "token, as TRL and OpenRLHF do) or `mean` (the mean over its tokens). Stored with the model; every "
        "scorer (PPO, the reward-model judge, monitoring) reads responses the same way.",
    )
    share_prompt: bool = Field(
        True,
        description="Compute each pair's prompt once ([prompt][chosen][rejected] with a custom mask; "
        "sdpa/eager attention only).",
    )


class DPOConfig(TrainConfig):
    """Direct preference optimisation against a frozen reference (log-probs precomputed once)."""

    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate (AdamW).")
    beta: float = Field(0.1, gt=0, description="Strength of the implicit KL constraint.")
    loss_type: str = Field("sigmoid", description="DPO loss variant.")
    share_prompt: bool = Field(
        True,
        description="Compute each pair's prompt once ([prompt][chosen][rejected] with a custom mask; "
        "sdpa/eager attention only).",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Conservative DPO: assumed share of flipped labels (sigmoid loss only).",
    )
    rpo_alpha: float = Field(
        0.0,
        ge=0,
        description="Weight of a negative log-likelihood (SFT) term on the chosen reply, per chosen token, "
        "added to the DPO loss: loss = DPO + rpo_alpha * NLL(chosen) (Pang et al. 2024, RPO; TRL's "
        "rpo_alpha). "
        "Pulls the policy toward the chosen replies, not only away from the rejected ones; 0 = off.",
    )
    accuracy_pairs: int = Field(
        128,
        ge=0,
        description="Training pairs the end-of-run implicit accuracy is measured on (the first ones this run "
        "used, in order); 0 = every training pair. A diagnostic that costs one forward pass per pair: a "
        "20,000-pair run would otherwise spend most of an epoch on it. The held-out pairs are always all "
        "scored.",
    )

    @field_validator("loss_type", mode="before")
    @classmethod
    def _registered_loss(cls, value: object) -> object:
        """A variant of ``rlhfops.train.loss_registry``; the error lists them (as for a Literal)."""
        names = dpo_variant_names()
        if value not in names:
            listed = [repr(n) for n in names]
            expected = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"
            raise PydanticCustomError("dpo_loss_type", "Input should be {expected}", {"expected": expected})
        return value

    @model_validator(mode="after")
    def _options_of_the_variant(self) -> DPOConfig:
        """A variant option set for a variant that does not read it (e.g. ``label_smoothing`` with
        ``loss_type=ipo``) is refused instead of silently ignored."""
        reads = set(dpo_variant(self.loss_type).options)
        for name in sorted({o for v in DPO_VARIANTS.values() for o in v.options} - reads):
            if name in self.model_fields_set and getattr(self, name) != type(self).model_fields[name].default:
                users = [v.name for v in DPO_VARIANTS.values() if name in v.options]
                raise ConfigError(
                    f"{name}={getattr(self, name)} is not used by loss_type={self.loss_type!r} "
                    f"(only by {', '.join(users)}); remove it or change loss_type"
                )
        return self
