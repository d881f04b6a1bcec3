"""End to end with real (tiny) training in the workspace: `train sft` -> `train dpo` (play order and
lineage by the training stages), hand-made evaluations of the DPO policy, then `gate evaluate` ->
`gate sign` -> `promote` and the report, whose reward curve comes from the DPO run's metrics.jsonl."""

from __future__ import annotations

import json

from gate_helpers import passing_evals, token_of

from rlhfops.cli.main import main


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as ex:
        code = int(ex.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _train(stage: str, sets: dict[str, object], capsys) -> None:
    args = ["train", stage]
    for k, v in {**sets, "progress": "false", "batch_size": 4, "max_steps": 2}.items():
        args += ["--set", f"{k}={v}"]
    code, _, err = _cli(args, capsys)
    assert code == 0, err


def test_gate_after_real_tiny_training(gws, tmp_path, monkeypatch, capsys):
    from rlhfops.models.tiny import make_tiny_model_dir

    monkeypatch.chdir(gws.root)
    monkeypatch.setenv("RLHFOPS_USER", "frank")
    tiny = make_tiny_model_dir(tmp_path / "tiny")
    demos = _rows(
        tmp_path / "demos.jsonl",
        [{"prompt": f"order {i} late", "completion": "Sorry, fixing it."} for i in range(8)],
    )
    prefs = _rows(
        tmp_path / "prefs.jsonl",
        [{"prompt": f"refund {i}?", "chosen": "Yes, today.", "rejected": "No."} for i in range(8)],
    )
    _train("sft", {"model": tiny, "data": demos, "output_dir": "runs/sft"}, capsys)
    _train("dpo", {"model": gws.root / "runs/sft/final", "data": prefs, "output_dir": "runs/dpo"}, capsys)
    (dpo,) = gws.artifacts("dpo-model")
    (sft,) = gws.artifacts("sft-model")
    assert sft.id in dpo.parents  # the training stage linked the lineage
    # before any evaluation the gate is incomplete and promote refuses
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "gina"))
    code, _, err = _cli(["promote", dpo.id[:12], "--as", "gina"], capsys)
    assert code == 2 and "incomplete" in err
    passing_evals(gws, tmp_path / "ev", dpo.id, baseline=sft.id)
    code, out, _ = _cli(["gate", "evaluate", dpo.id[:12]], capsys)
    assert code == 0 and "PASS" in out.splitlines()[0]
    code, out, err = _cli(
        ["gate", "sign", dpo.id[:12], "--decision", "approve", "--reason", "meets all", "--as", "gina"],
        capsys,
    )
    assert code == 0, err
    code, out, err = _cli(["promote", dpo.id[:12], "--as", "gina"], capsys)
    assert code == 0 and f"deployed: dpo-model {dpo.id}" in out, err
    from rlhfops.report.data import gate_report_data

    data = gate_report_data(gws, dpo.id)
    assert data.metrics_source == str(gws.root / "runs" / "dpo" / "metrics.jsonl")
    assert data.reward_key == "reward_margin" and [s for s, _ in data.curves["reward"]] == [1.0, 2.0]
    assert [r["kind"] for r in data.lineage][:2] == ["dpo-model", "spec"]
    assert [d["action"] for d in data.decisions] == ["sign", "promote"]
    code, out, _ = _cli(["report", dpo.id[:12], "--out", str(tmp_path / "r.html")], capsys)
    assert code == 0 and 'id="plot-curves"' in (tmp_path / "r.html").read_text()
