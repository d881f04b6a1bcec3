"""Helpers for the workspace tests (also imported by child processes of the concurrency test)."""

from __future__ import annotations

import os
from pathlib import Path

from shared_helpers import who


def sign_all(w) -> None:
    w.sign_spec("business-owner", who(w, "bob"))
    w.sign_spec("technical-lead", who(w, "carol"))


def ready_play1(w) -> None:
    sign_all(w)
    w.record_baseline({"task_completion_rate": 0.7, "client_flag_rate": 0.05}, "test", "alice", n=100)


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def concurrent_writer(root: str, db_url: str | None, tag: str, n: int, scratch: str, barrier=None) -> None:
    """Child process: register n distinct artifacts and one shared one, add n people, record a baseline.

    ``barrier`` (shared by both processes) makes them start writing at the same moment.
    """
    if db_url:
        os.environ["RLHFOPS_DATABASE_URL"] = db_url
    else:
        os.environ.pop("RLHFOPS_DATABASE_URL", None)
    from rlhfops.workspace import Workspace

    ws = Workspace.open(Path(root))
    base = Path(scratch) / tag
    base.mkdir(parents=True, exist_ok=True)
    shared = write_file(base / "shared.jsonl", '{"prompt": "same content in both processes"}\n')
    ws.people()  # connect before the barrier
    if barrier is not None:
        barrier.wait(timeout=60)
    for i in range(n):
        f = write_file(base / f"data-{i}.jsonl", f'{{"prompt": "{tag} row {i}"}}\n')
        ws.register_artifact("dataset", f, [], tag, {"i": i})
        ws.add_person(f"{tag}-person-{i}", "rater", tag)
        ws.register_artifact("dataset", shared, [], tag, {})
    ws.record_baseline({"task_completion_rate": 0.5}, tag, tag)
    ws.close()
