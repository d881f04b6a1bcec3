"""Rollouts for the RL stage: generate, score, compute KL, rewards and advantages (no gradients here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlhfops.measures.diversity import (
    distinct_n,
    looping_share,
    loops,
    opening_share,
    repeated_ngram_fraction,
)
from rlhfops.models.generate import generate
from rlhfops.train.distributed import shards_weights
from rlhfops.train.kl import get_kl_estimator, sequence_kl
from rlhfops.train.ppo_model import ShardedLM
from rlhfops.train.ppo_parts import RolloutParts
from rlhfops.train.reward_sources import Responses
from rlhfops.train.rl_math import (
    apply_no_eos_penalty,
    assemble_token_rewards,
    compute_gae,
    group_normalized_advantages,
    rloo_advantages,
    whiten,
)

if TYPE_CHECKING:
    from rlhfops.models.generate import GenerationOutput


@dataclass
class Rollout:
    """One iteration's experience; every tensor is [B, N] over response positions unless noted."""

    sequences: torch.Tensor  # [B, P+N]
    attention_mask: torch.Tensor  # [B, P+N]
    prompt_length: int
    mask: torch.Tensor  # response tokens up to and including EOS
    old_logps: torch.Tensor
    ref_logps: torch.Tensor
    values: torch.Tensor | None
    advantages: torch.Tensor
    returns: torch.Tensor | None
    kl_per_response: torch.Tensor  # [B] summed KL estimate of the penalty (``kl_estimator``; k1 can be < 0)
    kl_measured: torch.Tensor  # [B] the reported KL per response: summed k3 (``kl.sequence_kl``), >= 0
    scores: torch.Tensor  # [B] scores after the no-EOS penalty
    texts: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    #: [B] each row's index in the iteration's global batch (over every process); None: 0..B-1
    row_ids: torch.Tensor | None = None


def global_row_ids(num_prompts: int, samples_per_prompt: int, rank: int, world: int) -> list[int]:
    """Indices in the global batch of this process's rows: process ``rank`` holds the prompts
    ``rank, rank + world, ...`` of the iteration (``Trainer.rows_for_step(step)[rank::world]``), each
    expanded to ``samples_per_prompt`` consecutive rows, as one process holding them all orders them."""
    k = samples_per_prompt
    return [(i * world + rank) * k + s for i in range(num_prompts) for s in range(k)]


def process_sum(trainer: RolloutParts) -> Any:
    """A function summing a tensor over every data-parallel process (None with one process)."""
    if trainer.accelerator.num_processes == 1:
        return None
    return lambda t: trainer.accelerator.reduce(t.clone(), reduction="sum")


def every_process_done(trainer: RolloutParts) -> Any:
    """With weights partitioned over the processes (FSDP, DeepSpeed ZeRO-3: ``shards_weights``), the
    sampler's lock-step rule (``generate(lockstep=...)``): this process's "my rows are finished" flag in,
    "every process's rows are finished" out (an all-reduce); None otherwise (one process, DDP or ZeRO-2:
    each process samples on its own whole copy of the weights)."""
    if not shards_weights(trainer.accelerator):
        return None
    device = trainer.accelerator.device

    def all_done(done_here: bool) -> bool:
        busy = torch.tensor([0.0 if done_here else 1.0], dtype=torch.float64, device=device)
        return float(trainer.accelerator.reduce(busy, reduction="sum").item()) == 0.0

    return all_done


def full_attention_mask(out: Any) -> torch.Tensor:
    """Prompt mask + response mask: exactly what generation attended to (a sampled token that happens to
    be the pad id still counts; everything after EOS does not)."""
    return torch.cat([out.prompt_mask.long(), out.response_mask.long()], dim=1)


def _generate(
    trainer: RolloutParts,
    prompts: list[list[int]],
    gen: torch.Generator,
    greedy: bool = False,
    num_samples: int = 1,
    backend: Any = None,
    row_ids: list[int] | None = None,
    rows_total: int | None = None,
) -> GenerationOutput:
    """Sample from the policy with the built-in sampler, or with ``backend`` (a rollout backend).

    Under FSDP or DeepSpeed ZeRO-3 the sampler calls the policy through the sharded root's forward
    (``ShardedLM``; the engine's under ZeRO-3) in lock-step with the other processes
    (:func:`every_process_done`)."""
    cfg = trainer.config
    lm = trainer.accelerator.unwrap_model(trainer.model).lm
    lockstep = every_process_done(trainer)
    was_training = lm.training
    lm.eval()
    extra = {} if lockstep is None else {"lockstep": lockstep}
    out = (generate if backend is None else backend.generate)(
        lm if lockstep is None else ShardedLM(trainer.model, lm),
        prompts,
        max_new_tokens=cfg.max_new_tokens,
        temperature=0.0 if greedy else cfg.temperature,
        top_p=cfg.top_p,
        eos_token_id=trainer.tokenizer.eos_token_id,
        pad_token_id=trainer.tokenizer.pad_token_id,
        generator=gen,
        num_samples=num_samples,
        row_ids=row_ids,
        rows_total=rows_total,
        **extra,
    )
    lm.train(was_training)
    return out


def _responses(trainer: RolloutParts, prompts: list[list[int]], out: GenerationOutput) -> Responses:
    mask = out.response_mask.bool()
    resp = [out.response_ids[i][mask[i]].tolist() for i in range(len(prompts))]
    texts = trainer.tokenizer.batch_decode(resp, skip_special_tokens=True)
    return Responses(prompt_ids=prompts, response_ids=resp, texts=texts)


def _behaviour_metrics(out: Any, responses: Responses, scores: torch.Tensor) -> dict[str, float]:
    lengths = out.response_mask.sum(-1).float()
    return {
        "score": float(scores.mean()),
        "response_length": float(lengths.mean()),
        "hit_length_limit": float((~out.has_eos.bool()).float().mean()),
        "distinct_2": distinct_n(responses.response_ids, 2),
        "repeated_4gram": repeated_ngram_fraction(responses.response_ids, 4),
    }


@torch.no_grad()
def make_rollout(
    trainer: RolloutParts,
    prompts: list[list[int]],
    gen: torch.Generator,
    beta: float,
    batch_prompts: int | None = None,
) -> Rollout:
    """This process's share of one iteration's rollout.

    ``prompts`` are this process's prompts (``rows_for_step(step)[rank::world]``) of a global batch of
    ``batch_prompts`` (default: ``len(prompts)``, one process); every process passes the same ``gen``.
    Sampling is per global row and advantages are whitened with the global batch's statistics, so the
    processes together build the rollout one process would build from the whole batch.
    """
    cfg = trainer.config
    k = cfg.samples_per_prompt
    acc = trainer.accelerator
    expanded = [p for p in prompts for _ in range(k)]
    ids = global_row_ids(len(prompts), k, acc.process_index, acc.num_processes)
    total = (batch_prompts if batch_prompts is not None else len(prompts)) * k
    # rows in the order of `expanded`
    backend = trainer.rollout_backend
    out = _generate(trainer, prompts, gen, num_samples=k, backend=backend, row_ids=ids, rows_total=total)
    all_sum = process_sum(trainer)
    device = trainer.accelerator.device
    seqs = out.sequences.to(device)
    attn = full_attention_mask(out).to(device)
    P = out.prompt_length
    mask = out.response_mask.to(device).float()
    responses = _responses(trainer, expanded, out)
    raw_scores = trainer.scorer.score(responses).to(device).float()
    scores = raw_scores
    if cfg.no_eos_penalty is not None:
        scores = apply_no_eos_penalty(raw_scores, out.has_eos.to(device).bool(), cfg.no_eos_penalty)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if unwrapped.value_head is None and unwrapped.value_model is None and backend.exact_logprobs:
        # Critic-free: the sampler's log-probs and entropies are the policy's (same weights, eval mode; equal
        # to the training forward to 1e-5, tests/models/test_generate_alignment.py): no second forward pass.
        old_logps = out.logprobs.to(device).float() * mask
        entropy, values = out.entropy.to(device).float(), None
    else:
        trainer.model.eval()
        pol = trainer.model(seqs, attn, P, cfg.temperature or 1.0, with_entropy=True)
        trainer.model.train()
        old_logps, entropy = pol.logps * mask, pol.entropy
        values = pol.values * mask if pol.values is not None else None
    ref_logps = trainer.reference.logps(seqs, attn, P, cfg.temperature or 1.0, group=k) * mask
    kl = get_kl_estimator(cfg.kl_estimator)(old_logps, ref_logps) * mask
    kl_beta = beta if cfg.kl_mode == "reward" else 0.0
    returns = None
    if cfg.advantage_estimator == "gae":
        rewards = assemble_token_rewards(scores, kl, kl_beta, mask)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False, all_sum=all_sum)
        gae = compute_gae(rewards, values, mask, cfg.gamma, cfg.lam)
        advantages, returns = whiten(gae.advantages, mask, all_sum=all_sum) * mask, gae.returns
    else:
        seq_scores = scores - kl_beta * kl.sum(-1)
        fn = rloo_advantages if cfg.advantage_estimator == "rloo" else group_normalized_advantages
        advantages = fn(seq_scores, k)[:, None] * mask
    metrics = _behaviour_metrics(out, responses, raw_scores)
    metrics["kl_penalty"] = float(kl.sum(-1).mean())  # what the reward was charged, per response
    metrics["generate_seconds"] = backend.last_generate_seconds  # the backend's cost this iteration
    metrics["sync_seconds"] = backend.last_sync_seconds
    metrics["entropy"] = float((entropy * mask).sum() / mask.sum().clamp(min=1))
    if trainer.judge is not None:
        metrics["judge_score"] = float(trainer.judge.score(responses).mean())
    return Rollout(
        sequences=seqs,
        attention_mask=attn,
        prompt_length=P,
        mask=mask,
        old_logps=old_logps,
        ref_logps=ref_logps,
        values=values,
        advantages=advantages,
        returns=returns,
        kl_per_response=kl.sum(-1),
        kl_measured=sequence_kl(old_logps, ref_logps, mask).to(kl.dtype),
        scores=scores,
        texts=responses.texts,
        metrics=metrics,
        row_ids=torch.tensor(ids, dtype=torch.long),
    )


def policy_eval_logps(out: GenerationOutput, ref_logps: torch.Tensor, reference: bool) -> torch.Tensor:
    """The evaluated model's log-probs of its own sampled replies [B, N] (``out``: the built-in sampler's),
    without a second forward pass: evaluating the reference, they are the reference's (``ref_logps``; its KL
    to itself is 0 exactly); evaluating the policy, the sampler's log-probs are the policy's (same weights,
    eval mode, the same temperature; equal to the training forward to 1e-5,
    tests/models/test_generate_alignment.py), as :func:`make_rollout` uses them."""
    if reference:
        return ref_logps
    return out.logprobs.to(ref_logps.device).float()


@torch.no_grad()
def evaluate_policy(
    trainer: RolloutParts, prompts: list[list[int]], reference: bool = False
) -> dict[str, Any]:
    """Held-out behaviour of the policy (or of the reference): score, KL, length, diversity, judge.

    Sampled with the training temperature and a fixed seed, so two evaluations see the same noise.
    """

    cfg = trainer.config
    gen = torch.Generator().manual_seed(cfg.seed + 424242)
    bs = cfg.eval_batch_size  # replies per generate call (ppo_config.eval_batch_size)
    texts: list[str] = []
    all_resp: list[list[int]] = []
    scores, judge, kls, lengths, no_eos = [], [], [], [], []
    lm = trainer.accelerator.unwrap_model(trainer.model).lm
    for i in range(0, len(prompts), bs):
        part = prompts[i : i + bs]
        if reference and trainer.reference.copy is None:
            with lm.disable_adapter():
                out = _generate(trainer, part, gen)
        elif reference:
            out = generate(
                trainer.reference.copy,
                part,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                eos_token_id=trainer.tokenizer.eos_token_id,
                pad_token_id=trainer.tokenizer.pad_token_id,
                generator=gen,
            )
        else:
            out = _generate(trainer, part, gen)
        responses = _responses(trainer, part, out)
        seqs = out.sequences.to(trainer.accelerator.device)
        attn = full_attention_mask(out).to(seqs.device)
        mask = out.response_mask.to(seqs.device).float()
        temp = cfg.temperature or 1.0
        ref = trainer.reference.logps(seqs, attn, out.prompt_length, temp)
        pol = policy_eval_logps(out, ref, reference)  # the built-in sampler's log-probs (_generate)
        kls.extend(sequence_kl(pol, ref, mask).tolist())  # >= 0 (k3 summed), see kl.sequence_kl
        scores.extend(trainer.scorer.score(responses).tolist())
        if trainer.judge is not None:
            judge.extend(trainer.judge.score(responses).tolist())
        lengths.extend(mask.sum(-1).tolist())
        no_eos.extend((~out.has_eos.bool()).tolist())
        texts.extend(responses.texts)
        all_resp.extend(responses.response_ids)

    result: dict[str, Any] = {
        "prompts": len(prompts),
        "score": float(np.mean(scores)),
        "score_sem": float(np.std(scores) / np.sqrt(max(len(scores), 1))),
        "scores": [float(x) for x in scores],  # per prompt, in order: paired with the reference's (kl_sweep)
        "kl": float(np.mean(kls)),
        "response_length": float(np.mean(lengths)),
        "hit_length_limit": float(np.mean(no_eos)),
        "distinct_2": distinct_n(all_resp, 2),
        "opening_share": opening_share(texts),
        "looping_share": looping_share(texts),
        "loop_examples": [t for t in texts if loops(t)][:3],
        "examples": texts[:3],
    }
    if judge:
        result["judge_score"] = float(np.mean(judge))
        result["judge_sem"] = float(np.std(judge) / np.sqrt(len(judge)))
    return result
