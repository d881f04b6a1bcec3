"""The demo's rules come from the product, not from copies: the simulated raters use the workspace's
annotation settings (overlap, calibration threshold, gold rate), and the drift plot draws the threshold
the drift run used."""

from __future__ import annotations

import base64
import re

import pytest

from rlhfops.demo.raters import annotate


def _ws(tmp_path, annotation: str):
    from rlhfops.workspace import Workspace, init_workspace

    root = tmp_path / "ws"
    init_workspace(root, "support-replies").close()
    with (root / "rlhfops.yaml").open("a", encoding="utf-8") as f:
        f.write(annotation)
    ws = Workspace.open(root)
    ws.add_person("lead", "annotation-lead", "lead")
    return ws


def _pairs(n: int) -> list[tuple[str, str, str]]:
    good = "I'm sorry your order arrived damaged. I'll send a free return label and a refund in 5-7 days."
    return [(f"My order {i} arrived damaged.", good, "ok") for i in range(n)]


@pytest.mark.parametrize(("overlap", "threshold", "gold_rate"), [(2, 0.55, 0.0), (4, 0.6, 0.5)])
def test_simulated_raters_use_the_workspaces_annotation_settings(tmp_path, overlap, threshold, gold_rate):
    """annotation.overlap reaches the queue, annotation.calibration_threshold every calibration round, and
    annotation.gold_rate the share of gold items the raters are served (none at 0)."""
    import sqlalchemy as sa

    from rlhfops.annotate.calibration import round_result
    from rlhfops.annotate.queue import rater_labels
    from rlhfops.workspace import annotation_tables as m

    ws = _ws(tmp_path, f"annotation:\n  overlap: {overlap}\n  calibration_threshold: {threshold}\n"
             f"  gold_rate: {gold_rate}\n")  # fmt: skip
    try:
        gold = [(p, a, b) for p, a, b in _pairs(20)][10:]
        out = annotate(ws, _pairs(10), gold, tmp_path / "p.jsonl", "lead", n_raters=4, calibration_n=6)
        rounds = [round_result(ws, r["round"]) for r in out.calibration_rounds]
        with ws.session() as s:
            ks = set(s.scalars(sa.select(m.Item.k).where(m.Item.batch == "round-1")).all())
            gold_ids = set(s.scalars(sa.select(m.Item.id).where(m.Item.is_gold.is_(True))).all())
        labels = [
            x
            for r in range(1, 5)
            for x in rater_labels(ws, f"sim-rater-{r}" + ("-drifting" if r == 4 else ""))
        ]
    finally:
        ws.close()
    assert ks == {overlap}
    assert rounds and [r.result.threshold for r in rounds] == [threshold] * len(rounds)
    on_gold = [x for x in labels if x["item_id"] in gold_ids]
    assert (len(on_gold) > 0) is (gold_rate > 0)


def test_drift_plot_draws_the_threshold_the_drift_run_used():
    from rlhfops.demo.report import drift_plot

    windows = [{"auc": 0.5, "novel_share": 0.1, "mmd_p": 0.4, "drifted": False}]
    svg = base64.b64decode(re.sub(r"^data:.*?base64,", "", _uri(drift_plot(windows, 0.61)))).decode()
    assert "AUC drift threshold 0.61" in svg and "0.55" not in svg
    assert (
        "AUC drift threshold"
        not in base64.b64decode(re.sub(r"^data:.*?base64,", "", _uri(drift_plot(windows, None)))).decode()
    )


def _uri(svg: str) -> str:
    from rlhfops.report.render import svg_data_uri

    return svg_data_uri(svg)
