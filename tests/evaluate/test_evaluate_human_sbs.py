"""Human side-by-side through the annotation queue: eval compare --judge human -> raters -> eval collect.

Tiny random models answer; raters are driven through the queue's own fetch/submit functions (the web
pages over them are tested in tests/web/annotate). The result feeds the gate like a judge's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rlhfops.evaluate.human import item_outcome

RATERS = ("rita", "ravi")


def test_item_outcome_scores_labels_for_the_candidate():
    assert item_outcome(["A", "A"]) == ("win", 1.0)
    assert item_outcome(["B", "tie"]) == ("loss", 0.25)
    assert item_outcome(["A", "B"]) == ("tie", 0.5)
    assert item_outcome(["both_bad", "A"]) == ("win", 0.75)  # both bad counts as a tie for the pair
    assert item_outcome(["skip"]) is None and item_outcome([]) is None


@pytest.fixture
def sbs_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from rlhfops.models.tiny import make_tiny_model_dir
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "quinn")
    root = tmp_path / "ws"
    w = init_workspace(root, "support-replies")
    for name in RATERS:
        w.add_person(name, "rater", "quinn")
    w.add_person("quinn", "annotation-lead", "quinn")
    cand_id = w.register_artifact("sft-model", make_tiny_model_dir(tmp_path / "cand", seed=1), [], "t", {})
    base_id = w.register_artifact("base-model", make_tiny_model_dir(tmp_path / "base", seed=2), [], "t", {})
    w.close()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"Where is my order JL-{i}?"}) + "\n" for i in range(12))
    )
    monkeypatch.chdir(root)
    return {"root": root, "cand": cand_id, "base": base_id, "prompts": prompts}


def _label_all(root: Path, choose) -> list[tuple[int, str, str, bool]]:
    """Each rater labels everything assigned to them; ``choose(rater, view, item)`` -> left|right|tie."""
    from rlhfops.annotate.queue import fetch_next, submit_label
    from rlhfops.workspace import Workspace
    from rlhfops.workspace import annotation_tables as m

    done = []
    with Workspace.open(root) as ws:
        for rater in RATERS:
            while (view := fetch_next(ws, rater, gold_rate=0)) is not None:
                with ws.session() as s:
                    item = s.get(m.Item, view.item_id)
                    a = item.response_a
                choice = choose(rater, view, a)
                res = submit_label(ws, rater, view.item_id, choice)
                done.append((view.item_id, rater, res.choice, view.left != a))
    return done


def test_queue_label_collect_and_the_gate_reads_it(sbs_ws, cli):
    from rlhfops.gate.decide import gate_evaluate
    from rlhfops.workspace import Workspace

    random.seed(7)  # the queue's left/right draw
    root, cand, base = sbs_ws["root"], sbs_ws["cand"], sbs_ws["base"]
    args = ["eval", "compare", cand[:10], base[:10], "--prompts", str(sbs_ws["prompts"])]
    code, out, err = cli([*args, "--judge", "human", "--k", "2", "--max-new-tokens", "5"])
    assert code == 0, err
    batch = f"sbs-{cand[:12]}-vs-{base[:12]}"
    assert f"eval collect {batch}" in out

    code, _, err = cli(["eval", "collect", batch])  # nobody has labelled yet
    assert code == 2 and "lack their labels" in err and "--partial" in err
    code, _, err = cli(["eval", "collect", "no-such-batch"])
    assert code == 2 and "no such batch" in err

    # rita prefers the candidate whatever side it is on; ravi always clicks the left reply.
    done = _label_all(root, lambda r, v, a: ("left" if v.left == a else "right") if r == "rita" else "left")
    assert done and {r for _i, r, _c, _s in done} == set(RATERS)
    code, out, err = cli(["eval", "collect", batch, "--json"])
    assert code == 0, err
    meta = json.loads(out)
    wr = meta["win_rate"]

    # Reference, by hand from the stored labels: score A=1, tie=1/2, B=0, averaged per item.
    per_item: dict[int, list[float]] = {}
    for item_id, _rater, choice, _swapped in done:
        per_item.setdefault(item_id, []).append({"A": 1.0, "B": 0.0, "tie": 0.5}[choice])
    means = [sum(v) / len(v) for v in per_item.values()]
    wins, losses = sum(x > 0.5 for x in means), sum(x < 0.5 for x in means)
    with Workspace.open(root) as ws:
        from rlhfops.workspace import annotation_tables as m

        with ws.session() as s:
            identical = sum(
                1 for it in s.query(m.Item).filter(m.Item.batch == batch) if it.meta.get("identical")
            )
    ties = len(means) - wins - losses + identical
    assert (wr["wins"], wr["ties"], wr["losses"]) == (wins, ties, losses)
    assert wins > 0 and losses == 0  # rita always picks the candidate: ravi can only tie an item
    assert wr["judge"] == "human" and sorted(wr["raters"]) == sorted(RATERS)
    ravi_left = [c == ("B" if sw else "A") for _i, r, c, sw in done if r == "ravi"]
    rita_left = [c == ("B" if sw else "A") for _i, r, c, sw in done if r == "rita"]
    assert all(ravi_left)
    assert wr["first_position_share"] == pytest.approx((sum(ravi_left) + sum(rita_left)) / len(done))
    assert meta["complete"] is True and meta["kind"] == "side_by_side" and meta["model"] == cand

    with Workspace.open(root) as ws:
        sbs = ws.artifacts("evaluation")[-1]
        assert sbs.parents == (cand, base) and sbs.meta["win_rate"]["n"] == len(means) + identical
        g = gate_evaluate(ws, cand)
        assert g.evidence.win_rate is not None and g.evidence.win_rate["judge"] == "human"

    # The evaluation pairs never become training data.
    code, _, err = cli(["prefs", "export", str(root / "prefs.jsonl")])
    assert code == 2 and "no pair" in err


def test_left_clicking_raters_cannot_make_a_winner(sbs_ws, cli):
    """Position bias controlled: raters who always click the left reply give a win rate near 1/2."""
    random.seed(3)
    root, cand, base = sbs_ws["root"], sbs_ws["cand"], sbs_ws["base"]
    args = ["eval", "compare", cand[:10], base[:10], "--prompts", str(sbs_ws["prompts"]), "--judge", "human"]
    code, _, err = cli([*args, "--k", "1", "--max-new-tokens", "5", "--batch", "lefties"])
    assert code == 0, err
    done = _label_all(root, lambda r, v, a: "left")
    code, out, err = cli(["eval", "collect", "lefties", "--json"])
    assert code == 0, err
    wr = json.loads(out)["win_rate"]
    assert wr["first_position_share"] == 1.0
    # every label picked the left reply; which model sat there was a coin flip recorded per label
    cand_left = sum(1 for _i, _r, _c, swapped in done if not swapped)
    assert wr["wins"] == cand_left and wr["losses"] == len(done) - cand_left
    assert wr["ci_low"] < 0.5 < wr["ci_high"]  # no significant winner from position alone


def test_partial_collect_is_stored_incomplete(sbs_ws, cli):
    random.seed(1)
    root, cand, base = sbs_ws["root"], sbs_ws["cand"], sbs_ws["base"]
    args = ["eval", "compare", cand[:10], base[:10], "--prompts", str(sbs_ws["prompts"]), "--judge", "human"]
    code, _, err = cli([*args, "--k", "2", "--max-new-tokens", "5", "--limit", "3"])
    assert code == 0, err
    batch = f"sbs-{cand[:12]}-vs-{base[:12]}"
    from rlhfops.annotate.queue import fetch_next, submit_label
    from rlhfops.workspace import Workspace

    with Workspace.open(root) as ws:
        view = fetch_next(ws, "rita", gold_rate=0)
        submit_label(ws, "rita", view.item_id, "left")
    code, out, err = cli(["eval", "collect", batch, "--partial"])
    assert code == 0, err
    assert "INCOMPLETE" in out
    with Workspace.open(root) as ws:
        ev = ws.artifacts("evaluation")[-1]
        assert ev.meta["complete"] is False and ev.meta["win_rate"]["n"] >= 1


def test_outside_a_workspace_human_judging_is_refused(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"prompt": "hi"}\n')
    code, _, err = cli(["eval", "compare", "a", "b", "--prompts", "p.jsonl", "--judge", "human"])
    assert code == 2 and "workspace" in err
