"""Helpers for the monitor wiring tests: artifacts with given meta, back-dating, drift-report dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path


def add(ws, tmp: Path, kind: str, name: str, meta: dict | None = None, parents=(), text: str | None = None):
    """Register a small file (unique content) as an artifact; returns its id."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps({"name": name, "meta": meta}) + "\n")
    return ws.register_artifact(kind, path, list(parents), "alice", meta or {})


def backdate(ws, artifact_id: str, days: float) -> None:
    import sqlalchemy as sa

    from rlhfops.workspace import db

    with ws.session() as s:
        s.execute(
            sa.update(db.Artifact)
            .where(db.Artifact.id == artifact_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=days))
        )


def drift_report(drifted: bool, cluster_share: float = 0.2, output_drifted: bool = False) -> dict:
    prompts = [{"id": f"r{i}", "prompt": f"How do I bake bread number {i}?"} for i in range(60)]
    clusters = [{"share": cluster_share, "size": 20, "examples": prompts[:3]}] if drifted else []
    return {
        "input": {
            "latest": {
                "drifted": drifted,
                "evidence": "drifted (rule and): MMD^2=0.1 p=0.005, domain AUC=0.81"
                if drifted
                else "no drift",
                "drifted_prompts": prompts if drifted else [],
                "new_clusters": clusters,
            }
        },
        "output": {
            "metrics": [
                {
                    "name": "response_length",
                    "test": "ks_2samp",
                    "statistic": 0.4,
                    "p_value": 0.001,
                    "p_adjusted": 0.002 if output_drifted else 0.4,
                    "drifted": output_drifted,
                    "reference_value": 50.0,
                    "production_value": 80.0,
                }
            ]
        },
    }
