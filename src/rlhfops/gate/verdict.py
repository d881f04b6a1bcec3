"""The gate's verdict on one model: thresholds checked against merged evidence (pure).

``complete``: every threshold has evidence and every counted evaluation ran to the end
(``meta.complete is true``). ``passed``: complete and every threshold met. The ``digest`` (SHA-256
of the canonical JSON of model, spec hash, counted evaluations and results) binds a signature to
exactly this evidence: new evidence changes it, and a signature on the old digest no longer counts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rlhfops.gate.thresholds import (
    EvalSource,
    Evidence,
    ThresholdResult,
    merge_evidence,
    threshold_results,
)
from rlhfops.spec.schema import GateThresholds, SuccessCriteria


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes hashed by the gate and its log."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


@dataclass(frozen=True)
class GateEvaluation:
    """Pass/fail per threshold for ``model`` under the spec with hash ``spec_hash``."""

    model: str
    spec_hash: str
    results: tuple[ThresholdResult, ...]
    evidence: Evidence

    @property
    def missing(self) -> list[ThresholdResult]:
        return [r for r in self.results if r.passed is None]

    @property
    def failed(self) -> list[ThresholdResult]:
        return [r for r in self.results if r.passed is False]

    @property
    def complete(self) -> bool:
        return bool(self.results) and not self.missing and not self.evidence.incomplete

    @property
    def passed(self) -> bool:
        return self.complete and not self.failed

    @property
    def verdict(self) -> str:
        if not self.complete:
            return "incomplete"
        return "pass" if self.passed else "fail"

    def why_incomplete(self) -> str:
        parts = [f"{r.name} has no evidence" for r in self.missing]
        parts += [
            f"evaluation {e[:12]} did not finish (meta.complete is not true)"
            for e in self.evidence.incomplete
        ]
        return "; ".join(parts)

    @property
    def digest(self) -> str:
        return sha256_json(
            {
                "model": self.model,
                "spec_hash": self.spec_hash,
                "evaluations": sorted(self.evidence.counted),
                "results": [r.to_json() for r in self.results],
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "spec_hash": self.spec_hash,
            "verdict": self.verdict,
            "complete": self.complete,
            "passed": self.passed,
            "failed": [r.name for r in self.failed],
            "missing": [r.name for r in self.missing],
            "digest": self.digest,
            "results": [r.to_json() for r in self.results],
            "evidence": self.evidence.to_json(),
        }


def evaluate_gate(
    model: str,
    spec_hash: str,
    gate: GateThresholds,
    success: SuccessCriteria | None,
    evals: list[EvalSource],
    provenance: tuple[ThresholdResult, ...] | list[ThresholdResult] = (),
    redteam_categories: tuple[str, ...] = (),
) -> GateEvaluation:
    """Merge ``evals`` (oldest first) and check every threshold of the spec.

    ``provenance``: rows from :mod:`rlhfops.gate.provenance` (the model's and each rejected or external
    evaluation's), appended to the results so a failing one fails the gate, named.
    ``redteam_categories``: the red-team categories required when the spec lists none.
    """
    evidence = merge_evidence(evals)
    results = [*threshold_results(gate, success, evidence, redteam_categories), *provenance]
    return GateEvaluation(model, spec_hash, tuple(results), evidence)
