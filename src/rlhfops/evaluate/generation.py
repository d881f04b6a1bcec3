"""Replies and KL through the engine (:mod:`rlhfops.models.generate`, :mod:`rlhfops.models.loading`).

Replies for evaluation are greedy (``temperature = 0``) so a re-run gives the same text. The KL to a
reference is the mean over held-out prompts of the per-sequence estimate
``sum_t k3_t`` (:func:`rlhfops.train.kl.sequence_kl`, Schulman 2020) on replies *sampled* from the
candidate at temperature 1: unbiased for KL(pi || ref) like the summed log-ratio (k1), and never negative,
as PPO reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhfops.data.encode import encode_prompts
from rlhfops.data.schema import Prompt
from rlhfops.models.loading import load_causal_lm, load_tokenizer


@dataclass
class LoadedModel:
    path: str
    model: Any
    tokenizer: Any

    @classmethod
    def load(cls, path: str) -> LoadedModel:
        return cls(str(path), load_causal_lm(str(path), trainable=False).eval(), load_tokenizer(str(path)))

    def prompt_ids(self, prompts: list[str]) -> list[list[int]]:
        rows = [Prompt([{"role": "user", "content": p}], i + 1, "eval") for i, p in enumerate(prompts)]
        return encode_prompts(rows, self.tokenizer)

    def _run(self, ids: list[list[int]], max_new_tokens: int, temperature: float, seed: int) -> Any:
        import torch

        from rlhfops.models.generate import generate

        gen = torch.Generator().manual_seed(seed)
        return generate(
            self.model,
            ids,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            generator=gen,
        )

    def decode(self, out: Any) -> list[str]:
        texts = []
        for ids, mask in zip(out.response_ids, out.response_mask, strict=True):
            keep = [
                int(t) for t, m in zip(ids, mask, strict=True) if m and int(t) != self.tokenizer.eos_token_id
            ]
            texts.append(self.tokenizer.decode(keep, skip_special_tokens=True).strip())
        return texts

    def respond(
        self,
        prompts: list[str],
        max_new_tokens: int = 128,
        batch_size: int = 8,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """One reply per prompt, in order."""
        ids = self.prompt_ids(prompts)
        out: list[str] = []
        for start in range(0, len(ids), batch_size):
            out += self.decode(
                self._run(ids[start : start + batch_size], max_new_tokens, temperature, seed + start)
            )
        return out


def sequence_logprobs(model: Any, sequences: Any, attention: Any, prompt_length: int) -> Any:
    """log p of every response token under ``model``: [B, N] (N = sequences.shape[1] - prompt_length)."""
    import torch

    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=attention, position_ids=positions).logits.float()
    logp = torch.log_softmax(logits[:, prompt_length - 1 : -1], -1)
    return logp.gather(-1, sequences[:, prompt_length:, None]).squeeze(-1)


def mean_kl(
    candidate: LoadedModel,
    reference: LoadedModel,
    prompts: list[str],
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 8,
) -> float:
    """Mean per-sequence KL(candidate || reference) in nats on replies sampled from the candidate (>= 0)."""
    import torch

    from rlhfops.train.kl import sequence_kl

    ids = candidate.prompt_ids(prompts)
    total, n = 0.0, 0
    for start in range(0, len(ids), batch_size):
        out = candidate._run(ids[start : start + batch_size], max_new_tokens, 1.0, seed + start)
        attn = torch.cat([out.prompt_mask.long(), out.response_mask.long()], dim=1)
        mask = out.response_mask.float()
        pol = sequence_logprobs(candidate.model, out.sequences, attn, out.prompt_length)
        ref = sequence_logprobs(reference.model, out.sequences, attn, out.prompt_length)
        total += float(sequence_kl(pol, ref, mask).sum())
        n += len(out.sequences)
    return total / max(n, 1)
