"""A policy judge: checks a reply against the facts the spec states (the spec's ``policy`` section).

Configured by :class:`rlhfops.spec.policy.Policy` (any user's spec can hold one); no model. For one reply
to one customer message it finds (:meth:`PolicyJudge.check`):

* an **apology** (a word of ``policy.apology``) and a **remedy** (a phrase of ``policy.remedies``), whole
  words, any case; a reply that declines (:func:`rlhfops.measures.refusal.is_refusal`) offers no remedy;
* the **sentence count** (text split after ``.``, ``!`` or ``?`` followed by a space or the end), which must
  lie in ``[min_sentences, max_sentences]``;
* **violations**: every quantity stated (a money amount ``$9.95``, a duration ``5-7 business days`` /
  ``30-day`` / ``24 hours``, a percentage) must be a value of a fact the sentence is about (a sentence is
  about a fact when it holds one of the fact's ``about`` words), or of any fact when the sentence is about
  none; a quantity the customer stated is always allowed. Every match of an ``identifiers`` regex (an
  order number) must occur in the customer's message. A ``forbidden`` phrase is a violation.

A reply **meets the policy** when it has an apology, a remedy, no violation and an allowed length. Scores:
for ``policy.criterion`` (the success-criteria behaviour it measures) 1.0 / 0.0 by that rule; for any other
criterion a graded score (+1 apology, +1 remedy, +1 allowed length, -1.5 per violation) so the judge can
compare two replies side by side (``--judge policy``).

Surface rules, stated so a reader can check them: a wrong fact phrased in words ("two weeks") is not seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rlhfops.judge.base import DEFAULT_CRITERION, PointwiseJudge
from rlhfops.measures.refusal import is_refusal

_UNIT = r"(?:business\s+|working\s+|calendar\s+)?(?:hours?|days?|weeks?|months?|years?)"
_QUANTITY = re.compile(
    r"\$\s?\d+(?:[.,]\d+)?"
    r"|\b\d+(?:\s*(?:-|–|to)\s*\d+)?(?:\s+|-)?" + _UNIT + r"\b"
    r"|\b\d+(?:\.\d+)?\s*%",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def normalise_quantity(text: str) -> str:
    """One spelling per quantity: lower case, ``5 to 7`` -> ``5-7``, ``30-day`` -> ``30 day``, singular."""
    t = text.lower().replace("–", "-")
    t = re.sub(r"\s*(?:-|\bto\b)\s*(?=\d)", "-", t)
    t = re.sub(r"(\d)-(?=[a-z])", r"\1 ", t)
    t = re.sub(r"\bworking\b", "business", t)
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\$\s+", "$", t)
    return re.sub(r"(hour|day|week|month|year)s\b", r"\1", t)


def quantities(text: str) -> list[str]:
    """The normalised quantities stated in ``text`` (money, durations, percentages)."""
    return [normalise_quantity(m.group(0)) for m in _QUANTITY.finditer(text)]


def sentences(text: str) -> list[str]:
    """The non-empty sentences of ``text``."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _words_rx(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alts = "|".join(
        r"\s+".join(re.escape(w) for w in p.split()) for p in sorted(words, key=len, reverse=True)
    )
    return re.compile(rf"(?<![\w-])(?:{alts})(?![\w-])", re.I)


@dataclass
class PolicyCheck:
    """What the policy judge found in one reply."""

    apology: bool
    remedy: bool
    sentences: int
    length_ok: bool
    violations: list[str] = field(default_factory=list)

    @property
    def meets_policy(self) -> bool:
        return self.apology and self.remedy and self.length_ok and not self.violations

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "meets_policy": self.meets_policy}


class PolicyJudge(PointwiseJudge):
    """The policy facts of a spec as a judge (module docstring)."""

    name = "policy"

    def __init__(self, policy: Any, tie_margin: float = 0.0) -> None:
        self.policy = policy
        self.tie_margin = tie_margin
        self._apology = _words_rx(list(policy.apology))
        self._remedy = _words_rx(list(policy.remedies))
        self._facts = [
            (f.name, _words_rx(list(f.about)), {normalise_quantity(v) for v in f.values})
            for f in policy.facts
        ]
        self._all_values = set().union(*(v for _, _, v in self._facts)) if self._facts else set()
        self._ids = [re.compile(rx) for rx in policy.identifiers]
        self._forbidden = _words_rx(list(policy.forbidden))

    def violations(self, prompt: str, response: str) -> list[str]:
        """Each wrong or invented statement of ``response``, in words."""
        out: list[str] = []
        given = set(quantities(prompt))
        for sent in sentences(response):
            facts = [(n, vals) for n, rx, vals in self._facts if rx is not None and rx.search(sent)]
            allowed = set().union(*(v for _, v in facts)) if facts else self._all_values
            for q in quantities(sent):
                if q not in allowed and q not in given:
                    about = ", ".join(n for n, _ in facts) or "no policy fact"
                    out.append(f"states {q!r} ({about}; the policy says {', '.join(sorted(allowed))})")
        for rx in self._ids:
            for m in rx.finditer(response):
                if m.group(0) not in prompt:
                    out.append(f"invents the identifier {m.group(0)!r} (not in the customer's message)")
        if self._forbidden is not None:
            out += [
                f"states a policy the business does not have: {m.group(0)!r}"
                for m in self._forbidden.finditer(response)
            ]
        return out

    def check(self, prompt: str, response: str) -> PolicyCheck:
        t = response.strip()
        n = len(sentences(t))
        p = self.policy
        return PolicyCheck(
            apology=bool(self._apology and self._apology.search(t)),
            remedy=bool(self._remedy.search(t)) and not is_refusal(t) if self._remedy else False,
            sentences=n,
            length_ok=p.min_sentences <= n <= p.max_sentences,
            violations=self.violations(prompt, t),
        )

    def meets(self, prompt: str, response: str) -> bool:
        """Whether ``response`` meets the policy (apology, remedy, allowed length, no violation)."""
        return self.check(prompt, response).meets_policy

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        c = self.check(prompt, response)
        if self.policy.criterion is not None and criterion == self.policy.criterion:
            return 1.0 if c.meets_policy else 0.0
        return float(c.apology) + float(c.remedy) + float(c.length_ok) - 1.5 * len(c.violations)
