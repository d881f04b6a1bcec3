"""The annotation service on a real database: assignment rules, gold items, calibration gate, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from web_helpers import pairs

from rlhfops.annotate.calibration import round_result, start_round
from rlhfops.annotate.export import export_preferences
from rlhfops.annotate.queue import (
    NotAssignedError,
    ProductionBlockedError,
    fetch_next,
    progress,
    queue_pairs,
    submit_label,
    to_canonical,
)
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m


def _label_all(ws, rater: str, choose, gold_rate: float = 0.0) -> list[int]:
    seen = []
    while (item := fetch_next(ws, rater, gold_rate=gold_rate)) is not None:
        seen.append(item.item_id)
        submit_label(ws, rater, item.item_id, choose(item))
    return seen


def _pick_good(item) -> str:
    return "left" if item.left.startswith("good") else "right"


def test_k_raters_per_item_never_twice_and_only_own_items(ws) -> None:
    assert queue_pairs(ws, pairs(5), "b1", 2) == (5, 0)
    assert queue_pairs(ws, pairs(5), "b1", 2) == (0, 5)  # idempotent import
    first = _label_all(ws, "rita", _pick_good)
    assert sorted(first) == sorted(set(first)) and len(first) == 5
    assert len(_label_all(ws, "ravi", _pick_good)) == 5
    assert _label_all(ws, "rosa", _pick_good) == []  # every item has its k=2 raters
    with pytest.raises(NotAssignedError):
        submit_label(ws, "rosa", first[0], "left")
    assert progress(ws, "rita").labelled == 5 and progress(ws, "rosa").labelled == 0


def test_left_right_is_randomised_recorded_and_mapped_back(ws) -> None:
    queue_pairs(ws, pairs(40), "b1", 1)
    _label_all(ws, "rita", _pick_good)
    with ws.session() as s:
        rows = s.execute(sa.select(m.Label.choice, m.Label.swapped)).all()
    assert {c for c, _s in rows} == {"A"}  # the good reply is response_a wherever it was shown
    swapped = sum(1 for _c, sw in rows if sw)
    assert 8 <= swapped <= 32  # both positions used (binomial(40, .5): P(outside) < 1e-4)
    assert to_canonical("left", True) == "B" and to_canonical("right", True) == "A"
    with pytest.raises(UserError, match="choice 'up'"):
        to_canonical("up", False)


def test_gold_items_are_mixed_in_at_the_rate_and_look_like_others(ws) -> None:
    queue_pairs(ws, pairs(60), "b1", 3)
    queue_pairs(ws, pairs(10, start=1000, gold_every=1), "gold", 1)
    got = []
    for _ in range(40):
        item = fetch_next(ws, "rita", gold_rate=0.2)
        got.append(item)
        assert set(item.to_json()) == {"item_id", "kind", "prompt", "left", "right", "calibration"}
        submit_label(ws, "rita", item.item_id, "left")
    gold = [i for i in got if i.prompt.startswith("prompt 100")]
    assert len(gold) == 8  # 20% of 40
    assert len({i.item_id for i in got}) == 40


def test_double_submit_and_policy_checks(ws) -> None:
    queue_pairs(ws, pairs(2), "b1", 1)
    item = fetch_next(ws, "rita")
    a = submit_label(ws, "rita", item.item_id, "left", criteria={"accuracy": "right"})
    b = submit_label(ws, "rita", item.item_id, "right")
    assert a.created and not b.created and a.label_id == b.label_id and b.choice == a.choice
    nxt = fetch_next(ws, "rita")
    with pytest.raises(UserError, match="not allowed by the spec"):
        submit_label(ws, "rita", nxt.item_id, "tie", allowed=("left", "right"))
    with pytest.raises(UserError, match="criterion 'x'"):
        submit_label(ws, "rita", nxt.item_id, "left", criteria={"x": "maybe"})


def test_calibration_blocks_until_a_round_passes(ws) -> None:
    queue_pairs(ws, pairs(12), "b1", 3)
    r1 = start_round(ws, "lena", n=4, threshold=0.65)
    raters = ["rita", "ravi", "rosa"]
    # round 1: raters disagree -> failed -> production blocked
    for n, r in enumerate(raters):
        items = []
        while True:
            try:
                item = fetch_next(ws, r)
            except ProductionBlockedError:
                break
            assert item.calibration
            items.append(item)
            good = _pick_good(item)
            choice = [good, "right" if good == "left" else "left", "tie"][n]  # A, B, tie: no pair agrees
            submit_label(ws, r, item.item_id, choice)
        assert len(items) == 4
    res = round_result(ws, r1)
    assert res.status == "failed" and res.result.overall == pytest.approx(0.0)
    assert len(res.result.split_items) == 4
    assert set(res.result.pairwise) == {"ravi|rita", "ravi|rosa", "rita|rosa"}
    assert res.to_json()["split_items"][0]["prompt"].startswith("prompt ")
    with pytest.raises(ProductionBlockedError, match="round 1 failed: overall agreement 0%"):
        fetch_next(ws, "rita")
    # round 2: everyone agrees -> passed -> production resumes with the production items
    r2 = start_round(ws, "lena", n=4)
    for r in raters[:2]:
        with pytest.raises(ProductionBlockedError, match="round 2 open"):
            _label_all(ws, r, _pick_good)
    with pytest.raises(ProductionBlockedError, match="round 2 open"):
        fetch_next(ws, "rita")
    assert len(_label_all(ws, "rosa", _pick_good)) == 4 + 12  # the round passes, then all 12 production pairs
    res2 = round_result(ws, r2)
    assert res2.status == "passed" and res2.result.overall == pytest.approx(1.0)
    item = fetch_next(ws, "rita")
    assert item is not None and not item.calibration


def test_export_writes_engine_format_and_registers_alpha(ws, tmp_path: Path) -> None:
    queue_pairs(ws, pairs(6), "b1", 3)

    def rosa(item) -> str:  # picks the bad reply on prompts 0 and 3 only: never unanimous, whatever the sides
        good = _pick_good(item)
        return ("right" if good == "left" else "left") if item.prompt in ("prompt 0", "prompt 3") else good

    plans = {"rita": _pick_good, "ravi": _pick_good, "rosa": rosa}
    for r, fn in plans.items():
        _label_all(ws, r, fn)
    res = export_preferences(ws, tmp_path / "prefs.jsonl", "lena", min_labels=3)
    rows = [json.loads(x) for x in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert res.rows == len(rows) == 6
    for row in rows:
        assert row["chosen"].startswith("good") and row["rejected"].startswith("bad")
        assert row["agreement"] in (pytest.approx(2 / 3), 1.0) and row["n_labels"] == 3
    from rlhfops.annotate.agreement import krippendorff_alpha

    art = ws.artifact(res.artifact_id)
    assert art.kind == "preferences"
    assert art.meta["agreement"] == pytest.approx(res.alpha)
    with ws.session() as s:
        labs = s.execute(sa.select(m.Label.rater, m.Label.item_id, m.Label.choice)).all()
    raters, items = sorted({r for r, _i, _c in labs}), sorted({i for _r, i, _c in labs})
    lookup = {(r, i): c for r, i, c in labs}
    assert res.alpha == pytest.approx(
        krippendorff_alpha([[lookup.get((r, i)) for i in items] for r in raters])
    )
    from rlhfops.data.schema import load_prefs  # the engine reads it

    assert len(load_prefs(tmp_path / "prefs.jsonl")) == 6
    # the format follows the extension (data.io.write_rows): prefs.parquet is a Parquet file, same rows
    import pyarrow.parquet as pq

    res_pq = export_preferences(ws, tmp_path / "prefs.parquet", "lena", min_labels=3, register=False)
    assert res_pq.rows == 6 and (tmp_path / "prefs.parquet").read_bytes()[:4] == b"PAR1"
    assert pq.read_table(tmp_path / "prefs.parquet").to_pylist() == rows
    assert len(load_prefs(tmp_path / "prefs.parquet")) == 6
    from rlhfops.errors import DataError

    with pytest.raises(DataError, match=r"prefs\.txt: unknown extension"):
        export_preferences(ws, tmp_path / "prefs.txt", "lena", min_labels=3, register=False)
    assert not (tmp_path / "prefs.txt").exists()


def test_export_of_chosen_batches_only(ws, tmp_path: Path) -> None:
    """``batches`` keeps only the pairs queued in those batches, computes alpha over them alone and records
    them; a batch no production pair has is one error and writes nothing."""
    from rlhfops.annotate.queue import PairIn

    queue_pairs(ws, pairs(4), "round-1", 2)
    flipped = [PairIn(f"prompt {i}", f"bad reply {i}", f"good reply {i}") for i in (10, 11)]
    queue_pairs(ws, pairs(2, start=12) + flipped, "round-2", 2)

    def ravi(item) -> str:  # disagrees with rita on two round-1 prompts only
        good = _pick_good(item)
        return ("right" if good == "left" else "left") if item.prompt in ("prompt 0", "prompt 1") else good

    _label_all(ws, "rita", _pick_good)
    _label_all(ws, "ravi", ravi)
    res = export_preferences(ws, tmp_path / "r2.jsonl", "lena", batches=["round-2"])
    rows = [json.loads(x) for x in (tmp_path / "r2.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in rows) == ["prompt 10", "prompt 11", "prompt 12", "prompt 13"]
    assert all(r["chosen"].startswith("good") for r in rows)
    assert res.alpha == pytest.approx(1.0)  # round-2's labels agree; round-1's disagreement is not counted
    assert ws.artifact(res.artifact_id).meta["batches"] == ["round-2"]
    both = export_preferences(ws, tmp_path / "all.jsonl", "lena")
    assert both.rows == 6 and both.alpha < 1.0  # prompts 0 and 1 are ties: dropped
    assert "batches" not in ws.artifact(both.artifact_id).meta
    two = export_preferences(ws, tmp_path / "two.jsonl", "lena", batches=["round-1", "round-2"])
    assert two.rows == 6 and two.alpha == pytest.approx(both.alpha)
    with pytest.raises(
        UserError, match=r"no production pair was queued as batch 'round-3'; batches: round-1, round-2"
    ):
        export_preferences(ws, tmp_path / "x.jsonl", "lena", batches=["round-3"])
    assert not (tmp_path / "x.jsonl").exists()
