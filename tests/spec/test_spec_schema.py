"""The task spec schema: each missing section has its own clear error; 4 criteria are refused."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from rlhfops.cli.main import main
from rlhfops.spec.check import SpecError, check_spec_file, check_spec_text, load_spec
from rlhfops.spec.schema import REQUIRED_SECTIONS

TEMPLATES = resources.files("rlhfops.spec") / "templates"


def _example() -> dict:
    data = yaml.safe_load((TEMPLATES / "support_replies.yaml").read_text())
    data.pop("edge_cases")
    return data


def _check(data: dict, tmp_path: Path):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return check_spec_file(p)


def test_example_template_is_valid(tmp_path: Path) -> None:
    check = _check(_example(), tmp_path)
    assert check.ok, check.problems
    sc = check.spec.success_criteria
    assert sc.increase[0].at_least == pytest.approx(0.80, rel=1e-12)  # "80%" in the file
    assert sc.decrease[0].at_most == pytest.approx(0.02, rel=1e-12)
    assert check.spec.reward_model_refresh_days == 90


def test_required_sections_are_the_ones_the_issue_names() -> None:
    assert set(REQUIRED_SECTIONS) == {
        "task",
        "audience",
        "context",
        "good_response",
        "bad_response",
        "criteria",
        "tie_policy",
        "both_bad_policy",
        "success_criteria",
        "gate",
    }


@pytest.mark.parametrize("section", REQUIRED_SECTIONS)
def test_each_missing_section_gives_its_own_error(section: str, tmp_path: Path) -> None:
    data = _example()
    del data[section]
    check = _check(data, tmp_path)
    assert not check.ok
    assert len(check.problems) == 1
    problem = check.problems[0]
    assert problem.section == section
    assert "missing section" in problem.message
    assert problem.where.endswith(":1") or ":" in problem.where
    with pytest.raises(SpecError, match=rf"spec.yaml:\d+: {section}: missing section"):
        load_spec(tmp_path / "spec.yaml")


def test_two_missing_sections_give_two_errors(tmp_path: Path) -> None:
    data = _example()
    del data["audience"], data["tie_policy"]
    check = _check(data, tmp_path)
    assert sorted(p.section for p in check.problems) == ["audience", "tie_policy"]


def test_four_criteria_are_refused_with_the_reason(tmp_path: Path) -> None:
    data = _example()
    data["criteria"] = [{"name": n, "definition": f"{n} defined"} for n in ("a", "b", "c", "d")]
    check = _check(data, tmp_path)
    assert [p.section for p in check.problems] == ["criteria"]
    msg = check.problems[0].message
    assert "4 criteria given (a, b, c, d)" in msg and "at most 3" in msg and "agreement" in msg


def test_one_criterion_is_refused(tmp_path: Path) -> None:
    data = _example()
    data["criteria"] = data["criteria"][:1]
    check = _check(data, tmp_path)
    assert [p.section for p in check.problems] == ["criteria"]
    assert "define 2-3" in check.problems[0].message


def test_three_criteria_are_accepted(tmp_path: Path) -> None:
    data = _example()
    data["criteria"].append({"name": "accuracy", "definition": "States policy correctly."})
    assert _check(data, tmp_path).ok


def test_criterion_without_definition_names_the_field(tmp_path: Path) -> None:
    data = _example()
    del data["criteria"][1]["definition"]
    check = _check(data, tmp_path)
    assert [p.section for p in check.problems] == ["criteria.1.definition"]


def test_success_criteria_need_a_measurable_target(tmp_path: Path) -> None:
    data = _example()
    data["success_criteria"]["decrease"][0]["at_most"] = "often"
    check = _check(data, tmp_path)
    assert [p.section for p in check.problems] == ["success_criteria.decrease.0.at_most"]
    assert "'often'" in check.problems[0].message
    data["success_criteria"]["increase"][0]["at_least"] = 1.5
    assert "success_criteria.increase.0.at_least" in [p.section for p in _check(data, tmp_path).problems]


def test_policy_action_must_be_known(tmp_path: Path) -> None:
    data = _example()
    data["tie_policy"]["action"] = "coin_flip"
    check = _check(data, tmp_path)
    assert [p.section for p in check.problems] == ["tie_policy.action"]


def test_error_line_points_at_the_bad_value() -> None:
    text = (TEMPLATES / "support_replies.yaml").read_text().replace("at_most: 2%", "at_most: lots")
    check = check_spec_text(text, Path("spec.yaml"))
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "at_most: lots" in t)
    assert [str(p) for p in check.problems] == [
        f"spec.yaml:{line}: success_criteria.decrease.0.at_most: Input should be a valid number, "
        "unable to parse string as a number (got 'lots')"
    ]


def test_not_yaml_gives_the_line() -> None:
    check = check_spec_text("task: ok\naudience: [unclosed\n", Path("s.yaml"))
    assert len(check.problems) == 1 and check.problems[0].where.startswith("s.yaml:")
    assert "not valid YAML" in check.problems[0].message


def test_blank_template_lists_every_empty_field(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text((TEMPLATES / "blank.yaml").read_text())
    (tmp_path / "edge_cases.md").write_text("x")
    check = check_spec_file(tmp_path / "spec.yaml")
    sections = {p.section for p in check.problems}
    assert {"task", "audience", "context", "tie_policy.guidance", "criteria.0.name"} <= sections
    assert all("empty; fill it in" in p.message for p in check.problems)


def test_missing_appendix_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text((TEMPLATES / "support_replies.yaml").read_text())
    check = check_spec_file(tmp_path / "spec.yaml")
    assert [p.section for p in check.problems] == ["edge_cases"]


def test_cli_spec_check_lists_problems_and_exits_2(tmp_path: Path, capsys) -> None:
    data = _example()
    del data["context"], data["gate"]
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SystemExit) as ex:
        main(["spec", "check", str(p)])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "context: missing section" in err[0] and "gate: missing section" in err[1]
    assert err[2] == f"error: {p}: 2 problem(s); fix them and run `rlhfops spec check` again"


def test_cli_spec_check_ok(tmp_path: Path, capsys) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(_example(), sort_keys=False))
    main(["spec", "check", str(p)])
    assert capsys.readouterr().out.startswith(f"{p}: OK (sha256 ")
