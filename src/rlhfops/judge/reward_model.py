"""A reward-model judge: the normalised score of a trained ``rlhfops.models.heads.RewardModel``.

Input = the chat template's prompt (``add_generation_prompt=True``) + the reply's tokens + EOS, the
sequence a policy's sampled reply forms; the score is read at the last token and normalised with the
model's stored mean/std. ``criterion`` is ignored (a reward model has one criterion: its training data).
"""

from __future__ import annotations

from typing import Any

from rlhfops.judge.base import DEFAULT_CRITERION, PointwiseJudge


class RewardModelJudge(PointwiseJudge):
    def __init__(self, path: str, tie_margin: float = 0.0, batch_size: int = 8) -> None:
        self.path = str(path)
        self.name = f"rm:{self.path}"
        self.tie_margin = tie_margin
        self.batch_size = batch_size
        self._model: Any = None
        self._tok: Any = None

    def _load(self) -> None:
        if self._model is None:
            from rlhfops.models.heads import RewardModel
            from rlhfops.models.loading import load_tokenizer

            self._model = RewardModel.from_pretrained(self.path).eval()
            self._tok = load_tokenizer(self.path)

    def encode(self, prompt: str, response: str) -> list[int]:
        self._load()
        tok = self._tok
        p = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(p, add_special_tokens=False)["input_ids"]
        return list(ids) + list(tok(response, add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]

    def scores(self, prompts: list[str], responses: list[str]) -> list[float]:
        """Normalised rewards, one per (prompt, reply), batched with right padding."""
        import torch

        self._load()
        out: list[float] = []
        seqs = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        for start in range(0, len(seqs), self.batch_size):
            chunk = seqs[start : start + self.batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), self._tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(chunk):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            with torch.no_grad():
                values = self._model(ids, attention_mask=mask)
            last = mask.sum(1) - 1
            raw = values[torch.arange(len(chunk)), last]
            out += [float(x) for x in self._model.normalize(raw)]
        return out

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        return self.scores([prompt], [response])[0]
