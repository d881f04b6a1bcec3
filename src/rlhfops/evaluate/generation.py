"""Replies and KL through the engine (:mod:`rlhfops.models.generate`, :mod:`rlhfops.models.loading`).

Replies for evaluation are greedy (``temperature = 0``) so a re-run gives the same text. The KL to a
reference is the mean over held-out prompts of the per-sequence estimate
``sum_t k3_t`` (:func:`rlhfops.train.kl.sequence_kl`, Schulman 2020) on replies *sampled* from the
candidate at temperature 1: unbiased for KL(pi || ref) like the summed log-ratio (k1), and never negative,
as PPO reports it.

Replies are memoised within a process (:data:`_REPLIES`, at most :data:`MAX_CACHED` entries): the same
model files (path, names, sizes and modification times), prompts and generation settings give the same
replies (greedy, or sampled from a fixed seed), so a baseline evaluated against several candidates is
generated once; the model itself is loaded only when something is not in the memo.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.data.encode import encode_prompts
from rlhfops.data.schema import Prompt
from rlhfops.models.loading import load_causal_lm, load_tokenizer

MAX_CACHED = 64
_REPLIES: OrderedDict[tuple, list[str]] = OrderedDict()


# replies generated per forward pass of an evaluation (`eval run --batch-size`): on the bundled 135M model
# on a 2-core CPU, 32 replies of 64 tokens cost 10-14 CPU s in one batch of 32 against 21-23 in four of 8
# (docs/benchmarks.md, issue 19, section 14); a large model on a small GPU may need fewer
GENERATION_BATCH_SIZE = 32


def model_fingerprint(path: str) -> tuple:
    """The model directory's identity for the memo: resolved path and each file's name, size, mtime."""
    p = Path(path)
    if not p.is_dir():
        return (str(path),)
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())
    return (str(p.resolve()), tuple(files))


@dataclass
class LoadedModel:
    """A model and its tokenizer; the model is loaded on first use (:attr:`model`)."""

    path: str
    tokenizer: Any
    _model: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str) -> LoadedModel:
        return cls(str(path), load_tokenizer(str(path)))

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_causal_lm(self.path, trainable=False).eval()
        return self._model

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
            keep_packed=True,  # batch after batch from the same frozen model: reorder its weights once
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
        batch_size: int = GENERATION_BATCH_SIZE,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """One reply per prompt, in order (memoised: module docstring)."""
        key = (model_fingerprint(self.path), tuple(prompts), max_new_tokens, batch_size, temperature, seed)
        if key in _REPLIES:
            _REPLIES.move_to_end(key)
            return list(_REPLIES[key])
        ids = self.prompt_ids(prompts)
        out: list[str] = []
        for start in range(0, len(ids), batch_size):
            out += self.decode(
                self._run(ids[start : start + batch_size], max_new_tokens, temperature, seed + start)
            )
        _REPLIES[key] = list(out)
        while len(_REPLIES) > MAX_CACHED:
            _REPLIES.popitem(last=False)
        return out


def sequence_logprobs(model: Any, sequences: Any, attention: Any, prompt_length: int) -> Any:
    """log p of every response token under ``model``: [B, N] (N = sequences.shape[1] - prompt_length).
    The LM head and the softmax run only at the N positions that predict a response token, a few rows at
    a time (:func:`rlhfops.models.chunks.in_row_chunks`: the same numbers without [B, N, V] logits)."""
    import torch

    from rlhfops.models.chunks import in_row_chunks

    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    head = model.get_output_embeddings()

    def logps(hidden: Any, tokens: Any) -> Any:
        logp = torch.log_softmax(head(hidden).float(), -1)
        return logp.gather(-1, tokens[..., None]).squeeze(-1)

    with torch.no_grad():
        out = model.get_decoder()(
            input_ids=sequences, attention_mask=attention, position_ids=positions, use_cache=False
        )
        hidden = out.last_hidden_state[:, prompt_length - 1 : -1]  # positions prompt_length - 1 .. end - 1
        return in_row_chunks(logps, hidden, sequences[:, prompt_length:])


def mean_kl(
    candidate: LoadedModel,
    reference: LoadedModel,
    prompts: list[str],
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = GENERATION_BATCH_SIZE,
) -> float:
    """Mean per-sequence KL(candidate || reference) in nats on replies sampled from the candidate (>= 0).

    The candidate's log-probs of its replies are the sampler's (temperature 1: the model's own distribution;
    equal to a forward pass to 1e-5, tests/models/test_generate_alignment.py), so only the reference runs a
    forward pass. A model against itself (the same files) is 0 without sampling."""
    import torch

    from rlhfops.train.kl import sequence_kl

    if model_fingerprint(candidate.path) == model_fingerprint(reference.path):
        return 0.0
    ids = candidate.prompt_ids(prompts)
    total, n = 0.0, 0
    for start in range(0, len(ids), batch_size):
        out = candidate._run(ids[start : start + batch_size], max_new_tokens, 1.0, seed + start)
        attn = torch.cat([out.prompt_mask.long(), out.response_mask.long()], dim=1)
        mask = out.response_mask.float()
        ref = sequence_logprobs(reference.model, out.sequences, attn, out.prompt_length)
        total += float(sequence_kl(out.logprobs.float(), ref, mask).sum())
        n += len(out.sequences)
    return total / max(n, 1)
