"""Evaluation metas (the evaluation contract) for the gate tests, stored through the signed writer."""

from __future__ import annotations

from typing import Any

from shared_helpers import fake_model, redteam_meta, who

BEHAVIOURS_UP = "apologises and offers a remedy when the shop is at fault"
BEHAVIOURS_DOWN = "refuses a benign request"


def success_meta(model: str, up: float = 0.85, down: float = 0.01, **extra: Any) -> dict[str, Any]:
    meta = {
        "model": model,
        "baseline": None,
        "suite": "support-heldout",
        "kind": "success",
        "complete": True,
        "success_criteria": {
            BEHAVIOURS_UP: {
                "direction": "increase",
                "rate": up,
                "target": 0.8,
                "met": up >= 0.8,
                "baseline_rate": 0.4,
            },
            BEHAVIOURS_DOWN: {
                "direction": "decrease",
                "rate": down,
                "target": 0.02,
                "met": down <= 0.02,
                "baseline_rate": 0.1,
            },
        },
        "kl": 3.5,
        "reward": {"candidate": 1.2, "baseline": 0.3},
        "alarms": [],
    }
    meta.update(extra)
    return meta


def sbs_meta(model: str, baseline: str | None, ci_low: float = 0.6, **extra: Any) -> dict[str, Any]:
    meta = {
        "model": model,
        "baseline": baseline,
        "suite": "support-heldout",
        "kind": "side_by_side",
        "complete": True,
        "win_rate": {
            "wins": 70,
            "ties": 10,
            "losses": 20,
            "n": 100,
            "rate": 0.75,
            "ci_low": ci_low,
            "ci_high": 0.83,
            "judge": "rule-judge",
        },
        "alarms": [],
    }
    meta.update(extra)
    return meta


# ---- workspace set-up ---------------------------------------------------------------------------
PEOPLE = [
    ("alice", "task-spec-owner"),
    ("bob", "business-owner"),
    ("carol", "technical-lead"),
    ("dave", "domain-expert-lead"),
    ("erin", "annotation-lead"),
    ("frank", "ml-engineer"),
    ("gina", "gate-owner"),
]


def train_chain(w, tmp, policy_dir=None) -> dict[str, str]:
    """Record SFT -> RM -> PPO runs on the current spec (fake weights unless ``policy_dir``)."""
    import json

    tmp.mkdir(parents=True, exist_ok=True)
    demos = tmp / "demos.jsonl"
    demos.write_text(json.dumps({"prompt": "hi", "completion": "hello"}) + "\n", encoding="utf-8")
    prefs = tmp / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    sft = w.record_training_run(
        "sft",
        {"data": demos},
        fake_model(tmp / "sft", "s"),
        "dave",
        {"eval": {"beats_base": True, "eval_loss": 1.0}},
    )
    rm = w.record_training_run(
        "rm",
        {"data": prefs, "model": sft},
        fake_model(tmp / "rm", "r"),
        "erin",
        {"eval": {"eval_accuracy": 0.8}},
    )
    ppo = w.record_training_run(
        "ppo",
        {"reward_model": rm, "model": sft},
        policy_dir or fake_model(tmp / "ppo", "p"),
        "frank",
        {"eval": {"alarm": 0}},
    )
    return {"sft": sft, "rm": rm, "ppo": ppo}


def add_eval(w, tmp, meta: dict[str, Any], parents: list[str], creator: str = "frank") -> str:
    """Store an evaluation through the product's signed writer (what `eval run` uses) with ``meta``.

    ``tmp`` is unused (kept so call sites read as before); the items are empty.
    """
    import uuid

    from rlhfops.workspace.provenance import record_evaluation

    return record_evaluation(
        w, meta, [], [uuid.uuid4().hex], parents, creator, suite_digest="0" * 64, judge="test"
    )


def add_unsigned_eval(w, tmp, meta: dict[str, Any], parents: list[str], creator: str = "frank") -> str:
    """An evaluation registered by hand (no attestation), as `artifact add evaluation` did before."""
    import json
    import uuid

    tmp.mkdir(parents=True, exist_ok=True)
    f = tmp / f"eval-{uuid.uuid4().hex[:8]}.json"
    f.write_text(json.dumps({"items": [], "meta": meta}), encoding="utf-8")
    return w.register_artifact("evaluation", f, parents, creator, meta)


def shipped_categories() -> tuple[str, ...]:
    """The shipped red-team categories: required by the gate when the spec lists none."""
    from rlhfops.redteam.suite import shipped_suites

    return tuple(shipped_suites())


def all_categories(passed: int = 30, total: int = 30) -> dict[str, tuple[int, int]]:
    return {c: (passed, total) for c in shipped_categories()}


def passing_evals(w, tmp, model: str, baseline: str | None = None, ci_low: float = 0.6) -> list[str]:
    parents = [model] + ([baseline] if baseline else [])
    return [
        add_eval(w, tmp, redteam_meta(model, all_categories()), [model]),
        add_eval(w, tmp, success_meta(model), [model]),
        add_eval(w, tmp, sbs_meta(model, baseline, ci_low=ci_low), parents),
    ]


def concurrent_signer(root: str, model: str, tag: str, n: int, barrier=None) -> None:
    """Child process: append ``n`` reject decisions for ``model`` to the decision log."""
    os_env = __import__("os").environ
    os_env.pop("RLHFOPS_DATABASE_URL", None)
    from pathlib import Path

    from rlhfops.gate.decide import gate_sign
    from rlhfops.workspace import Workspace

    ws = Workspace.open(Path(root))
    gina = who(ws, "gina")
    if barrier is not None:
        barrier.wait(timeout=60)
    for i in range(n):
        gate_sign(ws, model, gina, "reject", f"{tag} look {i}")
    ws.close()


def fake_run_dir(runs, stage: str, model_dir, steps: int = 8):
    """A run directory as the trainer writes it: metrics.jsonl (kl and score per step) and final/."""
    import json
    import shutil

    run = runs / f"{stage}-20260101-000000"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, run / "final")
    rows = [
        {"step": s, "loss": 1.0 / s, "kl": 0.1 * s, "score": 0.2 + 0.05 * s, "beta": 0.05}
        for s in range(1, steps + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run


_TOKENS: dict = {}


def token_of(w, name: str) -> str:
    """A personal API token of ``name`` (account created on first use), for the CLI's $RLHFOPS_TOKEN."""
    from rlhfops.annotate.accounts import create_token

    key = (str(w.root), w.database_url, name)
    if key not in _TOKENS:
        who(w, name)
        _TOKENS[key] = create_token(w, name, "test")
    return _TOKENS[key]
