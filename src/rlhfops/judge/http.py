"""A judge behind an OpenAI-compatible chat-completions endpoint (httpx; vLLM, llama.cpp, OpenAI...).

Request: ``POST {url}/chat/completions`` with ``{"model", "messages", "temperature": 0}`` and, when the
environment variable named by ``api_key_env`` is set, ``Authorization: Bearer <key>``. The key itself is
never stored in settings or results.

Verdict parsing (:func:`parse_verdict`) accepts, in order: ``[[A]]`` / ``[[B]]`` / ``[[tie]]`` (the
MT-Bench format, Zheng et al. 2023), a ``verdict:`` / ``answer:`` / ``winner:`` line, then a reply that is
only "A", "B" or "tie" (also "Response A", "Assistant B", "equal", "both"). Anything else raises
``JudgeError`` naming the reply, rather than guessing. Score parsing takes the first ``[[n]]`` or
``score: n`` or a lone number.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from rlhfops.errors import UserError
from rlhfops.judge.base import DEFAULT_CRITERION, Verdict


class JudgeError(UserError):
    """The judge endpoint failed or replied with something that is not a verdict."""


PAIR_PROMPT = (
    "You are judging two replies of a customer-support assistant to the same customer message.\n"
    "Criterion: {criterion}\n\n[Customer message]\n{prompt}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n"
    "Which response is better? Answer with exactly one of [[A]], [[B]] or [[tie]]."
)
SCORE_PROMPT = (
    "Rate this customer-support reply from 1 (worst) to 10 (best) on: {criterion}\n\n"
    "[Customer message]\n{prompt}\n\n[Reply]\n{response}\n\nAnswer with the score as [[n]]."
)
_BRACKET = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.I)
_LINE = re.compile(
    r"\b(?:verdict|answer|winner|better)\s*(?:is)?\s*[:=]?\s*\**\s*(?:response\s+|assistant\s+)?(A|B|tie)\b",
    re.I,
)
_ALONE = re.compile(r"^\W*(?:response\s+|assistant\s+|option\s+)?(A|B|tie|equal|both)\W*$", re.I)
_SCORE = re.compile(
    r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]|score\s*[:=]?\s*(-?\d+(?:\.\d+)?)|^\s*(-?\d+(?:\.\d+)?)\s*$", re.I
)


def _canon(tok: str) -> Verdict:
    t = tok.lower()
    if t in ("a", "b"):
        return "A" if t == "a" else "B"
    return "tie"


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's reply (see the module docstring)."""
    found = {m.group(1).lower() for m in _BRACKET.finditer(text)}
    if len(found) == 1:
        return _canon(found.pop())
    if len(found) > 1:
        raise JudgeError(f"judge reply holds conflicting verdicts {sorted(found)}: {text[:200]!r}")
    m = _LINE.search(text)
    if m:
        return _canon(m.group(1))
    m = _ALONE.match(text.strip())
    if m:
        return _canon(m.group(1))
    raise JudgeError(f"judge reply has no verdict ([[A]], [[B]] or [[tie]]): {text[:200]!r}")


def parse_score(text: str) -> float:
    m = _SCORE.search(text.strip())
    if not m:
        raise JudgeError(f"judge reply has no score ([[n]]): {text[:200]!r}")
    return float(next(g for g in m.groups() if g is not None))


class OpenAIJudge:
    """Pairwise and pointwise judging through an OpenAI-compatible endpoint."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 2,
        client: Any = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.name = f"openai:{model}@{self.url}"
        self._client = client
        self.tokens = 0  # total_tokens of the responses' usage, when the endpoint reports it
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def complete(self, content: str) -> str:
        """The assistant text of one chat completion; retries transport errors and 5xx."""
        import httpx

        client = self._client or httpx.Client(timeout=self.timeout)
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "temperature": 0}
        last = ""
        try:
            for _ in range(self.retries + 1):
                try:
                    r = client.post(f"{self.url}/chat/completions", json=body, headers=self._headers())
                except httpx.HTTPError as err:
                    last = f"{type(err).__name__}: {err}"
                    continue
                if r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    continue
                if r.status_code >= 400:
                    raise JudgeError(
                        f"judge endpoint {self.url}: HTTP {r.status_code} ({r.text[:200]}); check url, model "
                        f"and the API key in ${self.api_key_env}"
                    )
                try:
                    data = r.json()
                    text = str(data["choices"][0]["message"]["content"])
                    used = (data.get("usage") or {}).get("total_tokens")
                    if isinstance(used, int):
                        with self._lock:
                            self.tokens += used
                    return text
                except (ValueError, KeyError, IndexError, TypeError):
                    raise JudgeError(
                        f"judge endpoint {self.url}: not a chat-completions response: {r.text[:200]!r}"
                    ) from None
        finally:
            if self._client is None:
                client.close()
        raise JudgeError(f"judge endpoint {self.url}: failed after {self.retries + 1} attempts ({last})")

    def judge(self, prompt: str, response_a: str, response_b: str) -> Verdict:
        text = self.complete(
            PAIR_PROMPT.format(criterion=DEFAULT_CRITERION, prompt=prompt, a=response_a, b=response_b)
        )
        return parse_verdict(text)

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        return parse_score(
            self.complete(SCORE_PROMPT.format(criterion=criterion, prompt=prompt, response=response))
        )
