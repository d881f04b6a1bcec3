"""People and roles, the acting person, the business baseline (command line and CSV); both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ws_helpers import write_file

from rlhfops.cli.main import main
from rlhfops.errors import DataError, UserError
from rlhfops.workspace import acting_person, find_workspace
from rlhfops.workspace.baseline import read_baseline_csv
from rlhfops.workspace.identity import check_role


def test_roles_are_checked_and_normalised() -> None:
    assert check_role("Business_Owner") == "business-owner"
    assert check_role("raters") == "rater"
    with pytest.raises(UserError, match="role 'boss' unknown; valid: task-spec-owner"):
        check_role("boss")


def test_acting_person_order(monkeypatch) -> None:
    monkeypatch.setenv("RLHFOPS_USER", "env-user")
    assert acting_person("cli-user") == "cli-user"
    assert acting_person(None) == "env-user"
    monkeypatch.delenv("RLHFOPS_USER")
    assert acting_person(None)  # the OS user


def test_people_add_is_idempotent_and_listed(ws) -> None:
    assert ws.add_person("zoe", "rater", "alice") is True
    assert ws.add_person("zoe", "rater", "alice") is False
    assert ws.add_person("zoe", "red-team-lead", "alice") is True
    assert [r for n, r in ws.people() if n == "zoe"] == ["rater", "red-team-lead"]


def test_find_workspace_walks_up_and_env_overrides(ws, tmp_path: Path, monkeypatch) -> None:
    sub = ws.root / "runs" / "deep"
    sub.mkdir(parents=True)
    found = find_workspace(sub)
    assert found is not None and found.root == ws.root
    found.close()
    assert find_workspace(tmp_path) is None
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(ws.root))
    found = find_workspace(tmp_path)
    assert found is not None and found.root == ws.root
    found.close()


def test_baseline_from_per_output_csv(tmp_path: Path) -> None:
    p = write_file(
        tmp_path / "b.csv", "task_completed,review_minutes,client_flag\n1,4,0\n0,6,1\nyes,2,no\ntrue,,0\n"
    )
    got = read_baseline_csv(p)
    assert got.n == 4
    assert got.values["task_completion_rate"] == pytest.approx(3 / 4, rel=1e-12)
    assert got.values["review_minutes_per_output"] == pytest.approx(12 / 3, rel=1e-12)
    assert got.values["client_flag_rate"] == pytest.approx(1 / 4, rel=1e-12)


def test_baseline_csv_errors_name_the_line(tmp_path: Path) -> None:
    p = write_file(tmp_path / "b.csv", "task_completed\n1\nmaybe\n")
    with pytest.raises(DataError, match=r"b.csv:3: task_completed='maybe'"):
        read_baseline_csv(p)
    p = write_file(tmp_path / "c.csv", "metric,value\ntask_completion_rate,1.4\n")
    with pytest.raises(UserError, match="task_completion_rate=1.4: must be between 0 and 1"):
        read_baseline_csv(p)
    p = write_file(tmp_path / "d.csv", "foo,bar\n1,2\n")
    with pytest.raises(DataError, match="no known columns"):
        read_baseline_csv(p)


def test_cli_people_and_baseline(ws, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ws.root)
    main(["people", "add", "gina", "--role", "gate-owner"])
    assert capsys.readouterr().out == "gina: gate-owner\n"
    main(["people", "list", "--json"])
    assert {"name": "gina", "role": "gate-owner"} in json.loads(capsys.readouterr().out)
    csv = write_file(tmp_path / "before.csv", "metric,value\nclient_flag_rate,0.04\n")
    main(["baseline", "record", "--csv", str(csv), "--task-completion-rate", "0.7", "--n", "250"])
    capsys.readouterr()
    main(["baseline", "show", "--json"])
    base = json.loads(capsys.readouterr().out)
    assert base["task_completion_rate"]["value"] == pytest.approx(0.7, rel=1e-12)
    assert base["client_flag_rate"]["value"] == pytest.approx(0.04, rel=1e-12)
    assert base["client_flag_rate"]["n"] == 250 and base["client_flag_rate"]["recorded_by"] == "alice"
    assert "before.csv (artifact " in base["client_flag_rate"]["source"]
    assert ws.baseline_values() == pytest.approx({"task_completion_rate": 0.7, "client_flag_rate": 0.04})
    with pytest.raises(SystemExit) as ex:
        main(["baseline", "record"])
    assert ex.value.code == 2 and "no metric given" in capsys.readouterr().err
