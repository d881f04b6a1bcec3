"""`rlhfops judge calibrate` and the RL stage's check of a reward judge against gate.min_agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_helpers import make_workspace, password_of, run_cli, who
from web_helpers import PEOPLE, pairs

from rlhfops.annotate.queue import fetch_next, queue_pairs, submit_label
from rlhfops.errors import PlayOrderError
from rlhfops.judge.calibrate import calibrate
from rlhfops.workspace.plays import blockers, check_stage_ready, record_override


class FakeJudge:
    """Prefers the reply holding "good" (tie on prompt 5, as the raters did).

    ``biased``: always answers A (position bias); on criterion "tone" it scores the other way round.
    """

    tie_margin = 0.0

    def __init__(self, biased: bool = False) -> None:
        self.biased = biased
        self.name = "fake-biased" if biased else "fake"
        self.calls = 0

    def judge(self, prompt: str, a: str, b: str) -> str:
        self.calls += 1
        if self.biased:
            return "A"
        if prompt == "prompt 5":  # the pair the raters called a tie
            return "tie"
        ga, gb = "good" in a, "good" in b
        return "tie" if ga == gb else ("A" if ga else "B")

    def score(self, prompt: str, response: str, criterion: str = "") -> float:
        good = 1.0 if "good" in response else 0.0
        return 1.0 - good if criterion == "tone" else good


@pytest.fixture
def labelled(sqlite_backend, tmp_path: Path):
    ws = make_workspace(tmp_path / "ws", PEOPLE + [("mia", "ml-engineer")], account_password=password_of("x"))
    queue_pairs(ws, pairs(6), "b1", 3)
    for rater in ("rita", "ravi", "rosa"):
        while (item := fetch_next(ws, rater)) is not None:
            side = "left" if item.left.startswith("good") else "right"
            choice = "tie" if item.prompt == "prompt 5" else side
            submit_label(ws, rater, item.item_id, choice, criteria={"helpful": side, "tone": side})
    yield ws
    ws.close()


def test_calibrate_scores_agreement_kappa_per_criterion_and_both_orders(labelled, tmp_path: Path) -> None:
    good = FakeJudge()
    res = calibrate(labelled, good, "good-judge", tmp_path / "cal.json", "lena")
    assert res.overall.n == 6 and res.overall.agreement == 1.0 and res.overall.kappa == pytest.approx(1.0)
    assert good.calls == 12  # both orders
    assert res.per_criterion["helpful"].agreement == 1.0 and res.per_criterion["tone"].agreement == 0.0
    assert res.position_inconsistent == 0
    art = labelled.artifact(res.artifact_id)
    assert art.kind == "judge-calibration" and art.meta["judge"] == "good-judge"
    assert json.loads((tmp_path / "cal.json").read_text())["overall"]["kappa"] == pytest.approx(1.0)
    biased = calibrate(labelled, FakeJudge(biased=True), "biased-judge", tmp_path / "b.json", "lena")
    # always "A" in both orders is inconsistent on every pair -> tie; only the human tie (prompt 5) agrees
    assert biased.position_inconsistent == 6 and biased.overall.agreement == pytest.approx(1 / 6)
    assert biased.overall.kappa == pytest.approx(0.0)


def _judge_blocker(ws, spec: str) -> str | None:
    found = [w for _p, w in blockers(ws, "ppo", {"reward_judge": spec}) if "reward judge" in w]
    return found[0] if found else None


def _fake_calibration(ws, tmp_path: Path, spec: str, kappa: float) -> None:
    f = tmp_path / f"{spec}-{kappa}.json"
    f.write_text(json.dumps({"kappa": kappa}))
    ws.register_artifact(
        "judge-calibration", f, [ws.register_spec_version("lena")], "lena", {"judge": spec, "kappa": kappa}
    )


def test_ppo_refuses_an_uncalibrated_or_weak_judge_at_the_edge(labelled, tmp_path: Path) -> None:
    need = labelled.current_spec().spec.gate.min_agreement
    assert "has no calibration" in _judge_blocker(labelled, "j1")
    _fake_calibration(labelled, tmp_path, "j1", need - 1e-6)
    assert f"Cohen's kappa {need - 1e-6:.3f} < {need}" in _judge_blocker(labelled, "j1")
    _fake_calibration(labelled, tmp_path, "j2", need)  # at the threshold: allowed
    assert _judge_blocker(labelled, "j2") is None
    assert "has no calibration" in _judge_blocker(
        labelled, "j3"
    )  # another judge's calibration does not count
    # without reward_judge the reward model rule applies, not the judge's
    assert not [w for _p, w in blockers(labelled, "ppo", {}) if "reward judge" in w]
    with pytest.raises(PlayOrderError, match="ppo refused"):
        check_stage_ready(labelled, "ppo", {"reward_judge": "j1"})
    o = record_override(labelled, "ppo", "judge checked by hand on 200 pairs", who(labelled, "mia"))
    assert check_stage_ready(labelled, "ppo", {"reward_judge": "j1"}).id == o.id


def test_judge_calibrate_cli(labelled, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(labelled.root)
    monkeypatch.setenv("RLHFOPS_USER", "lena")
    code, out, err = run_cli(
        ["judge", "calibrate", "--judge", "rule", "--out", str(tmp_path / "c.json")], capsys
    )
    assert code == 0, err
    assert out.startswith("judge rule: 6 pairs: agreement") and "Cohen's kappa" in out and "helpful:" in out
    assert json.loads((tmp_path / "c.json").read_text())["judge"] == "rule"
