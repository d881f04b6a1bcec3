"""A local causal-LM judge: reads the model's next-token probabilities instead of sampling.

Pairwise: the :data:`rlhfops.judge.http.PAIR_PROMPT` question in the model's chat template, then compares
log p("A") and log p("B") of the first answer token (after "[["); "tie" when they differ by at most
``tie_margin`` nats. Pointwise: P("Yes") / (P("Yes") + P("No")) to "Does the reply meet <criterion>?",
in [0, 1]. Deterministic; no text is parsed. Small models judge poorly: check agreement with humans.
"""

from __future__ import annotations

import math
from typing import Any

from rlhfops.judge.base import DEFAULT_CRITERION, Verdict
from rlhfops.judge.http import PAIR_PROMPT
from rlhfops.models.loading import load_causal_lm, load_tokenizer

YES_NO_PROMPT = (
    "Customer message:\n{prompt}\n\nSupport reply:\n{response}\n\n"
    "Does the reply meet this criterion: {criterion}? Answer Yes or No."
)


class LocalLMJudge:
    def __init__(self, path: str, tie_margin: float = 0.05) -> None:
        self.path = str(path)
        self.name = f"lm:{self.path}"
        self.tie_margin = tie_margin
        self._model: Any = None
        self._tok: Any = None

    def _load(self) -> None:
        if self._model is None:
            self._model = load_causal_lm(self.path, trainable=False).eval()
            self._tok = load_tokenizer(self.path)

    def _first_token(self, text: str) -> int:
        return int(self._tok(text, add_special_tokens=False)["input_ids"][0])

    def next_token_logprobs(self, question: str, prefix: str = "") -> Any:
        """log-softmax over the vocabulary of the token after ``question`` (chat template) + ``prefix``."""
        import torch

        self._load()
        text = self._tok.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        ids = self._tok(text + prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = self._model(input_ids=ids).logits[0, -1].float()
        return torch.log_softmax(logits, -1)

    def judge(self, prompt: str, response_a: str, response_b: str) -> Verdict:
        q = PAIR_PROMPT.format(criterion=DEFAULT_CRITERION, prompt=prompt, a=response_a, b=response_b)
        lp = self.next_token_logprobs(q, "[[")
        a, b = float(lp[self._first_token("A")]), float(lp[self._first_token("B")])
        if abs(a - b) <= self.tie_margin:
            return "tie"
        return "A" if a > b else "B"

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        lp = self.next_token_logprobs(
            YES_NO_PROMPT.format(prompt=prompt, response=response, criterion=criterion)
        )
        y, n = float(lp[self._first_token("Yes")]), float(lp[self._first_token("No")])
        return 1.0 / (1.0 + math.exp(n - y))
