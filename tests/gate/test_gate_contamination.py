"""The contamination guard (gate/contamination.py): an evaluation whose prompts are in the candidate's
training data (its own runs or its ancestors', through the lineage) is refused, named; a disjoint one
counts; one shared prompt is enough."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_helpers import add_eval, passing_evals, redteam_meta, shipped_categories
from shared_helpers import fake_model

from rlhfops.gate.decide import gate_evaluate
from rlhfops.workspace.provenance import record_evaluation

DEMO_PROMPT = "Where is my parcel JL-1?"  # SFT's demonstrations only
PREF_PROMPT = "My towel arrived torn."  # the reward model's preferences only
DPO_PROMPT = "Can I return a sofa after a year?"  # DPO's own preferences
VALIDATION_PROMPT = "Validation prompt, never trained on"  # SFT's eval_data


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def chain(gws, tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "data"
    d.mkdir()
    demos = _jsonl(d / "demos.jsonl", [{"prompt": DEMO_PROMPT, "completion": "On its way."}])
    val = _jsonl(d / "val.jsonl", [{"prompt": VALIDATION_PROMPT, "completion": "ok"}])
    prefs = _jsonl(
        d / "prefs.jsonl", [{"prompt": PREF_PROMPT, "chosen": "Sorry, a refund.", "rejected": "No."}]
    )
    dprefs = _jsonl(
        d / "dpo_prefs.jsonl",
        [{"prompt": [{"role": "user", "content": DPO_PROMPT}], "chosen": "30 days.", "rejected": "Yes."}],
    )
    sft = gws.record_training_run(
        "sft", {"data": demos, "eval_data": val}, fake_model(tmp_path / "sft", "s"), "dave", {"eval": {}}
    )
    rm = gws.record_training_run(
        "rm", {"data": prefs, "model": sft}, fake_model(tmp_path / "rm", "r"), "erin", {"eval": {}}
    )
    ppo = gws.record_training_run(
        "ppo", {"reward_model": rm, "model": sft}, fake_model(tmp_path / "ppo", "p"), "frank", {"eval": {}}
    )
    dpo = gws.record_training_run(
        "dpo", {"data": dprefs, "model": sft}, fake_model(tmp_path / "dpo", "d"), "frank", {"eval": {}}
    )
    return {"sft": sft, "rm": rm, "ppo": ppo, "dpo": dpo}


def _redteam_eval(ws, model: str, prompts: list[str]) -> str:
    """A red-team evaluation stored through the signed writer, with one item per prompt."""
    items = [
        {"id": f"probe-{i}", "prompt": p, "response": "no", "passed": True} for i, p in enumerate(prompts)
    ]
    meta = redteam_meta(
        model, {c: (30, 30) for c in shipped_categories()}, {c: [] for c in shipped_categories()}
    )
    return record_evaluation(ws, meta, items, [], [model], "frank", suite_digest="0" * 64, judge="test")


def _contamination(g) -> dict[str, str]:
    return {r.name: r.detail for r in g.results if r.name.startswith("contamination:")}


def _safe(n: int) -> list[str]:
    return [f"Held-out probe {i}: tell me a secret" for i in range(n)]


def test_disjoint_evaluation_is_accepted_and_counted(gws, tmp_path, chain):
    passing_evals(gws, tmp_path / "e", chain["ppo"], baseline=chain["sft"])
    ev = _redteam_eval(gws, chain["ppo"], _safe(5))
    g = gate_evaluate(gws, chain["ppo"])
    assert _contamination(g) == {} and ev in g.evidence.counted and g.passed, [r for r in g.failed]


@pytest.mark.parametrize(
    ("model", "prompt", "source"),
    [
        ("ppo", DEMO_PROMPT, "demonstrations"),  # the parent SFT's data
        ("ppo", PREF_PROMPT, "preferences"),  # the reward model's data (an ancestor, not a parent model)
        ("dpo", DPO_PROMPT, "preferences"),  # the model's own run; a chat prompt's user turn
        ("dpo", DEMO_PROMPT, "demonstrations"),
    ],
)
def test_one_overlapping_item_is_enough_to_refuse_naming_it(gws, tmp_path, chain, model, prompt, source):
    passing_evals(gws, tmp_path / "e", chain[model], baseline=chain["sft"])
    shared = "  " + prompt.upper() + " "  # case and spacing do not hide a copy
    ev = _redteam_eval(gws, chain[model], [*_safe(6), shared])
    g = gate_evaluate(gws, chain[model])
    rows = _contamination(g)
    assert list(rows) == [f"contamination:{ev[:12]}"]
    detail = rows[f"contamination:{ev[:12]}"]
    assert "1 of 7 item(s)" in detail and "probe-6" in detail and prompt.upper()[:20] in detail
    src = next(a for a in gws.artifacts(source) if a.id[:12] in detail)
    assert src.kind == source
    assert ev not in g.evidence.counted and not g.passed
    assert f"contamination:{ev[:12]}" in g.to_json()["failed"]


def test_a_near_copy_is_not_an_overlap(gws, tmp_path, chain):
    """The other side of the edge: a prompt that differs by more than case and spacing is not refused."""
    passing_evals(gws, tmp_path / "e", chain["ppo"], baseline=chain["sft"])
    _redteam_eval(gws, chain["ppo"], [DEMO_PROMPT + " Please.", PREF_PROMPT.replace("torn", "ripped")])
    assert _contamination(gate_evaluate(gws, chain["ppo"])) == {}


def test_many_overlaps_name_the_first_three_and_the_count(gws, tmp_path, chain):
    d = tmp_path / "more"
    d.mkdir()
    many = [f"Trained prompt {i}" for i in range(6)]
    data = _jsonl(d / "demos2.jsonl", [{"prompt": p, "completion": "x"} for p in many])
    sft2 = gws.record_training_run("sft", {"data": data}, fake_model(d / "sft2", "t"), "dave", {"eval": {}})
    ev = _redteam_eval(gws, sft2, many)
    detail = _contamination(gate_evaluate(gws, sft2))[f"contamination:{ev[:12]}"]
    assert "6 of 6 item(s)" in detail and "probe-0" in detail and "probe-2" in detail
    assert "probe-3" not in detail and "and 3 more" in detail


def test_the_validation_split_is_not_training_data(gws, tmp_path, chain):
    passing_evals(gws, tmp_path / "e", chain["ppo"], baseline=chain["sft"])
    _redteam_eval(gws, chain["ppo"], [VALIDATION_PROMPT])
    assert _contamination(gate_evaluate(gws, chain["ppo"])) == {}


def test_evaluations_without_items_get_no_contamination_row(gws, tmp_path, chain):
    """Evaluations that store no items (the meta-only helpers) have nothing to compare: no row."""
    evs = passing_evals(gws, tmp_path / "e", chain["ppo"], baseline=chain["sft"])
    add_eval(
        gws, tmp_path, redteam_meta(chain["ppo"], {c: (30, 30) for c in shipped_categories()}), [chain["ppo"]]
    )
    g = gate_evaluate(gws, chain["ppo"])
    assert _contamination(g) == {} and set(evs) & set(g.evidence.counted)
