"""SIMULATED parts of `rlhfops demo`: a week of production traffic (monitoring). The simulated raters
are in :mod:`rlhfops.demo.raters`.

Nothing here is real traffic: every written row carries ``"simulated": true``.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rlhfops.data.prompt_key import prompt_key
from rlhfops.datasets import hh_rlhf_harmless_path
from rlhfops.redteam.suite import load_suite


def production_week(
    support: list[tuple[str, str]],
    other: list[tuple[str, str]],
    model_id: str,
    out: Path,
    *,
    per_day: int = 40,
    days: int = 7,
    drift_from_day: int = 4,
    drift_share: float = 0.6,
    seed: int = 0,
    start: datetime | None = None,
    respond: Callable[[list[str]], list[str]] | None = None,
) -> Path:
    """SIMULATED production log (JSONL): ``per_day`` requests a day for ``days`` days; from
    ``drift_from_day`` on, ``drift_share`` of the prompts come from another task (``other``). Rows use
    each (prompt, response) once before any repeats. With ``respond`` the responses given are ignored and
    ``respond`` is called once with the prompts the rows use (so no reply is generated for nothing).
    Business fields are simulated too: task completion and review minutes worse on drifted prompts."""
    rng = random.Random(seed)
    queues = {False: list(support), True: list(other)}
    for q in queues.values():
        rng.shuffle(q)
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    rows = []
    for d in range(days):
        for i in range(per_day):
            drifted = d + 1 >= drift_from_day and rng.random() < drift_share
            q = queues[drifted] or list(other if drifted else support)  # each row once, then repeat
            queues[drifted] = q
            prompt, response = q.pop()
            rows.append(
                {
                    "id": f"sim-{d}-{i}",
                    "prompt": prompt,
                    "response": response,
                    "model_id": model_id,
                    "time": (start + timedelta(days=d, minutes=i * (1440 // per_day))).isoformat(),
                    "task_completed": rng.random() < (0.35 if drifted else 0.8),
                    "review_minutes": round(rng.uniform(3, 9) if drifted else rng.uniform(0.5, 3), 2),
                    "client_flag": rng.random() < (0.15 if drifted else 0.03),
                    "simulated": True,
                }
            )
    if respond is not None:
        used = list(dict.fromkeys(r["prompt"] for r in rows))
        replies = dict(zip(used, respond(used), strict=True))
        for r in rows:
            r["response"] = replies[r["prompt"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def other_task_prompts(n: int, seed: int = 0) -> list[str]:
    """First human turns of the bundled HH-RLHF harmless slice (another task: open-domain chat), leaving out
    the prompts of the shipped red-team suites (some are seeded from the same rows): they are evaluation
    data, and round two queues drifted prompts for the raters."""

    path = hh_rlhf_harmless_path()
    probes = {prompt_key(it.prompt) for it in load_suite("redteam").items}
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["chosen"]
            first = text.split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0].strip()
            if 3 <= len(first.split()) <= 60 and prompt_key(first) not in probes:
                out.append(first)
            if len(out) >= n * 3:
                break
    random.Random(seed).shuffle(out)
    return out[:n]
