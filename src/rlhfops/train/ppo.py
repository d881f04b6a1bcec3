"""The RL stage: rollouts from the policy, scores from a reward model, PPO updates under a KL penalty.

One iteration (= one optimizer "step" of the base skeleton, ``max_steps`` iterations in all):

1. take ``batch_size`` prompts (a pure function of seed and iteration), sample ``samples_per_prompt``
   responses each with temperature / top-p (seeded per process and iteration);
2. recompute log-probs and values with the training forward, reference log-probs, scores (reward model
   normalised with its stored statistics; a fixed penalty for responses without EOS);
3. per-token reward = -beta * KL estimate, plus the score at the last response token (Ziegler et al.
   2019; Ouyang et al. 2022 eq. 2), or KL as a loss term (``kl_mode: loss``);
4. advantages: GAE with a value head (Schulman et al. 2016), or the critic-free RLOO (Ahmadian et al.
   2024) / GRPO (Shao et al. 2024) group baselines; whitened;
5. ``ppo_epochs`` passes over shuffled minibatches with the clipped policy loss and the clipped value
   loss (Schulman et al. 2017), gradient accumulation inside a minibatch;
6. update beta (fixed or adaptive controller).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhfops.data.encode import fit_prompts
from rlhfops.data.schema import load_prompts
from rlhfops.errors import DataError, TrainingStopped
from rlhfops.models.heads import ValueModel
from rlhfops.models.loading import load_causal_lm, load_tokenizer, save_model
from rlhfops.train.alarms import reward_hacking_alarms
from rlhfops.train.base import Trainer, split_train_eval
from rlhfops.train.distributed import shards_weights, whole_models
from rlhfops.train.judge_reward import judge_reward_from_config
from rlhfops.train.kl import AdaptiveKLController, FixedKLController
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.ppo_model import ActorCritic, Reference
from rlhfops.train.ppo_rollout import Rollout, evaluate_policy, make_rollout
from rlhfops.train.ppo_update import ppo_update
from rlhfops.train.reward_sources import build_scorer
from rlhfops.train.rollout_backend import make_backend
from rlhfops.train.sft import lora_settings


def load_prompt_ids(
    path: str,
    tokenizer: Any,
    max_prompt_tokens: int,
    chat_template: str | None,
    truncation: str = "error",
) -> tuple[list[list[int]], dict[str, Any]]:
    """Prompt token ids (chat template with the generation prompt) of every row's ``prompt``, a longer
    one than ``max_prompt_tokens`` handled as ``truncation`` says, and the counts."""
    prompts = load_prompts(path)
    fitted = fit_prompts(prompts, tokenizer, max_prompt_tokens, truncation, chat_template)
    long = [(p, x) for p, x in zip(prompts, fitted.full, strict=True) if len(x) > max_prompt_tokens]
    if long and truncation == "error":
        raise DataError(
            f"{path}: {len(long)} of {len(fitted.full)} prompts are longer than max_length - max_new_tokens"
            f" = {max_prompt_tokens} tokens (first at line {long[0][0].line}, longest "
            f"{max(len(x) for _, x in long)}); raise max_length, shorten those prompts or set truncation"
            " to keep_end or drop"
        )
    if not fitted.ids:
        raise DataError(
            f"{path}: all {len(fitted.full)} prompts were dropped by truncation={truncation} (longer than"
            f" max_length - max_new_tokens = {max_prompt_tokens} tokens); raise max_length"
        )
    return fitted.ids, fitted.counts.as_dict()


class PPOTrainer(Trainer):
    stage = "ppo"
    unit_name = "responses"
    config: PPOConfig

    def load_data(self) -> None:
        cfg = self.config
        self.tokenizer = load_tokenizer(cfg.model, padding_side="left", chat_template=cfg.chat_template)
        max_prompt = cfg.max_length - cfg.max_new_tokens
        args = (self.tokenizer, max_prompt, cfg.chat_template, cfg.truncation)
        prompts, counts = load_prompt_ids(cfg.data, *args)
        self.truncation = {"data": counts}
        if cfg.eval_prompts:
            self.train_rows = prompts
            self.eval_rows, self.truncation["eval_prompts"] = load_prompt_ids(cfg.eval_prompts, *args)
        else:
            tr, ev = split_train_eval(len(prompts), cfg.eval_fraction, cfg.seed)
            self.train_rows, self.eval_rows = [prompts[i] for i in tr], [prompts[i] for i in ev]

    def build_model(self) -> None:
        with whole_models(self.accelerator):  # ZeRO-3: loaded whole; only ``prepare`` partitions the policy
            self._build_model()

    def _build_model(self) -> None:
        cfg = self.config
        lora = lora_settings(cfg)
        lm = load_causal_lm(
            cfg.model,
            dtype=cfg.dtype,
            attn_implementation=cfg.attn_implementation,
            lora=lora,
            gradient_checkpointing=cfg.checkpointing(),  # active in the update only (train mode)
        )
        value_model = None
        critic = cfg.advantage_estimator == "gae"
        if critic and cfg.value_model == "separate":
            start = cfg.value_model_path or cfg.reward_model or cfg.model
            value_model = ValueModel.from_pretrained_any(
                start, dtype=cfg.dtype, gradient_checkpointing=cfg.checkpointing()
            )
        self.model = ActorCritic(lm, value_model, with_value=critic)
        self.reference = Reference(lm, uses_lora=lora.enabled)
        if shards_weights(self.accelerator) and lora.enabled:  # the adapter-off forward reads sharded weights
            self.reference.root = self.model  # sharded in place by ``prepare`` (FSDP2): the same object
        self.rollout_backend = make_backend(cfg, self.accelerator.distributed_type.value)
        device = self.accelerator.device
        if cfg.reward_judge:
            decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
            self.scorer = judge_reward_from_config(cfg, self.run.path, decode)
        else:
            self.scorer = build_scorer(cfg.reward_model or cfg.reward_fn, device, self.tokenizer.pad_token_id)
        self.judge = build_scorer(cfg.judge, device, self.tokenizer.pad_token_id) if cfg.judge else None
        if cfg.kl_controller == "adaptive":
            self.kl_ctl = AdaptiveKLController(cfg.beta, cfg.target_kl, cfg.kl_horizon)
        else:
            self.kl_ctl = FixedKLController(cfg.beta)

    # the base skeleton's gradient hooks are not used: an iteration is rollout + several updates
    def micro_loss(self, rows: list[Any], global_units: float):  # pragma: no cover - not called
        raise RuntimeError("PPO overrides step()")

    #: set by a KL sweep: the reference's held-out evaluation from the sweep's first run. Every run of a
    #: sweep starts from the same model with the same eval prompts, seed and sampling, so it is the same.
    shared_reference_eval: dict[str, Any] | None = None

    def before_train(self) -> None:
        if self.start_step == 0 and self.eval_rows:
            shared = self.shared_reference_eval
            self.reference_eval = shared if shared is not None else self.evaluate_now(reference=True)
            if self.is_main:
                self.run.append_metrics({"step": 0, "eval_reference": self.reference_eval})

    def extra_state(self) -> dict[str, Any]:
        return {"kl_ctl": self.kl_ctl.state_dict(), "reference_eval": getattr(self, "reference_eval", None)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "kl_ctl" in state:
            self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.reference_eval = state.get("reference_eval")

    def step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        batch = self.rows_for_step(step)
        prompts = batch[self.rank :: self.world]
        # the same generator on every process: sampling is per row of the global batch (make_rollout)
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + step * 101)
        roll: Rollout = make_rollout(self, prompts, gen, beta=self.kl_ctl.value, batch_prompts=len(batch))
        stats = ppo_update(self, roll)
        # the measured KL (summed k3, >= 0) is what is logged and what the adaptive controller follows
        mean_kl = self._all_sum(float(roll.kl_measured.sum())) / max(self._all_sum(float(len(prompts))), 1)
        mean_kl /= self.config.samples_per_prompt
        beta_used = self.kl_ctl.value
        lr_used = self.scheduler.get_last_lr()[0]  # the rate this iteration's updates used
        self.kl_ctl.update(mean_kl, self.config.batch_size * self.config.samples_per_prompt)
        self.scheduler.step()
        record = {
            "step": step,
            "loss": stats["loss"],
            "beta": beta_used,
            "kl": mean_kl,
            "lr": lr_used,
            "seconds": time.perf_counter() - t0,
            **roll.metrics,
            **{k: v for k, v in stats.items() if k != "loss"},
        }
        if not np.isfinite(record["loss"]):
            raise TrainingStopped(f"ppo iteration {step}: loss is {record['loss']}; training stopped")
        every = self.config.eval_every
        if every and step % every == 0 and step != self.total_steps and self.eval_rows:
            record["eval"] = self.evaluate_now()
        return record

    def summary_extra(self) -> dict[str, Any]:
        """The rollout backend and its cost: mean seconds per iteration generating and syncing weights."""
        history = [r for r in self.run.read_metrics() if r.get("step", 0) >= 1 and "generate_seconds" in r]
        mean = lambda key: float(np.mean([r[key] for r in history])) if history else None  # noqa: E731
        return {
            "rollout": {
                "backend": self.rollout_backend.name,
                "generate_seconds_per_iteration": mean("generate_seconds"),
                "sync_seconds_per_iteration": mean("sync_seconds"),
                "iterations": len(history),
            }
        }

    def evaluate_now(self, reference: bool = False) -> dict[str, Any]:
        return evaluate_policy(self, self.eval_rows, reference=reference)

    def evaluate(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.eval_rows:
            out["policy"] = self.evaluate_now()
            out["reference"] = getattr(self, "reference_eval", None)
        history = [r for r in self.run.read_metrics() if r.get("step", 0) >= 1] if self.is_main else []
        alarms = reward_hacking_alarms(self.config, history, out.get("reference"), out.get("policy"))
        out["alarms"] = [a.as_dict() for a in alarms]
        out["alarm"] = len(alarms)
        return out

    def save_final(self, out_dir: Path) -> None:
        model = self.accelerator.unwrap_model(self.model)
        save_model(model.lm, self.tokenizer, out_dir)
        if model.value_head is not None:
            from safetensors.torch import save_file

            save_file(
                {k: v.detach().cpu().contiguous() for k, v in model.value_head.state_dict().items()},
                str(out_dir / "value_head.safetensors"),
            )
