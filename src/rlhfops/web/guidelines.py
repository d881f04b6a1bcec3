"""What raters see of the task spec: guidelines (task, audience, context, good / bad, criteria, policies)
and the choices the policies allow. The edge-case appendix is never part of it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from rlhfops.spec.check import check_spec_file


@dataclass(frozen=True)
class Guidelines:
    ok: bool
    allowed: tuple[str, ...]
    criteria: list[tuple[str, str]] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "allowed_choices": list(self.allowed),
            "criteria": [{"name": n, "definition": d} for n, d in self.criteria],
            **self.sections,
        }


def _examples(q: Any) -> dict[str, Any]:
    return {
        "description": q.description,
        "examples": [{"prompt": e.prompt, "response": e.response, "why": e.why} for e in q.examples],
    }


def build(spec: Any) -> Guidelines:
    if spec is None:
        return Guidelines(False, ("left", "right", "tie", "both_bad"))
    allowed = ["left", "right"]
    if spec.tie_policy.action == "allow_tie":
        allowed.append("tie")
    if spec.both_bad_policy.action == "mark_both_bad":
        allowed.append("both_bad")
    elif spec.both_bad_policy.action == "skip":
        allowed.append("skip")
    sections = {
        "task": spec.task,
        "audience": spec.audience,
        "context": spec.context,
        "good_response": _examples(spec.good_response),
        "bad_response": _examples(spec.bad_response),
        "tie_policy": {"action": spec.tie_policy.action, "guidance": spec.tie_policy.guidance},
        "both_bad_policy": {"action": spec.both_bad_policy.action, "guidance": spec.both_bad_policy.guidance},
    }
    return Guidelines(True, tuple(allowed), [(c.name, c.definition) for c in spec.criteria], sections)


class GuidelinesCache:
    """The spec's guidelines, re-read when the spec file changes (by mtime and size)."""

    def __init__(self, ws: Any) -> None:
        self.ws, self._lock, self._key, self._value = ws, threading.Lock(), None, None

    def get(self) -> Guidelines:
        path = self.ws.spec_path
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        with self._lock:
            if self._value is not None and key == self._key:
                return self._value
        value = build(check_spec_file(path).spec if key is not None else None)
        with self._lock:
            self._key, self._value = key, value
        return value
