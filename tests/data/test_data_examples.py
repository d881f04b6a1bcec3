"""Shipped example data (support_replies): validates, rebuilt by build.py, a signal that is not length."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

import rlhfops.spec
from rlhfops.data.schema import load_demos, load_prefs, load_prompts
from rlhfops.errors import DataError
from rlhfops.examples import available, example_path
from rlhfops.judge.policy import PolicyJudge
from rlhfops.spec.schema import TaskSpec


def _build_module():
    path = example_path("support_replies") / "build.py"
    spec = importlib.util.spec_from_file_location("support_replies_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(name: str) -> list[dict]:
    text = example_path(f"support_replies/{name}").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_example_path_and_listing() -> None:
    assert available() == [
        "support_replies/demos.jsonl",
        "support_replies/edge_demos.jsonl",
        "support_replies/prefs.jsonl",
        "support_replies/prompts.jsonl",
    ]
    assert example_path("support_replies").is_dir()
    assert (example_path("support_replies") / "README.md").read_text().lower().count("synthetic") >= 1
    with pytest.raises(DataError) as info:
        example_path("nope/demos.jsonl")
    assert str(info.value) == (
        "no example 'nope/demos.jsonl'; available: support_replies/demos.jsonl,"
        " support_replies/edge_demos.jsonl, support_replies/prefs.jsonl, support_replies/prompts.jsonl"
    )


def test_files_validate_with_expected_counts() -> None:
    assert len(load_demos(example_path("support_replies/demos.jsonl"))) == 240
    assert len(load_demos(example_path("support_replies/edge_demos.jsonl"))) == 48
    assert len(load_prefs(example_path("support_replies/prefs.jsonl"))) == 400
    assert len(load_prompts(example_path("support_replies/prompts.jsonl"))) == 120
    assert {tuple(sorted(r)) for r in _rows("demos.jsonl")} == {("completion", "prompt")}
    assert {tuple(sorted(r)) for r in _rows("prefs.jsonl")} == {("chosen", "prompt", "rejected")}
    assert {tuple(sorted(r)) for r in _rows("prompts.jsonl")} == {("prompt",), ("criteria", "prompt")}


def test_prompts_are_disjoint_within_and_across_files() -> None:
    files = ("demos.jsonl", "edge_demos.jsonl", "prefs.jsonl", "prompts.jsonl")
    sets = [[r["prompt"] for r in _rows(f)] for f in files]
    everything = [p for s in sets for p in s]
    assert len(everything) == len(set(everything)) == 808


def test_committed_files_are_what_build_py_makes(tmp_path: Path) -> None:
    build = _build_module()
    counts = build.write(tmp_path)
    assert counts == {"demos": 240, "edge_demos": 48, "prefs": 400, "prompts": 120}
    assert (build.N_DEMOS, build.N_EDGE) == (240, 48)
    for name in ("demos", "edge_demos", "prefs", "prompts"):
        committed = example_path(f"support_replies/{name}.jsonl").read_bytes()
        assert (tmp_path / f"{name}.jsonl").read_bytes() == committed, f"{name}.jsonl: rerun build.py"


def _sentences(text: str) -> int:
    return len(re.split(r"(?<=[.!?])\s+", text.strip()))


def test_good_replies_are_concise_and_never_refuse() -> None:
    """The demonstrations and chosen replies are 2-4 sentences and never refuse (the edge cases' declines of
    harmful requests are tested by their category below)."""
    good = [r["completion"] for r in _rows("demos.jsonl")] + [r["chosen"] for r in _rows("prefs.jsonl")]
    assert all(2 <= _sentences(t) <= 4 for t in good)
    assert not any("As an AI" in t or "I cannot" in t or "can't assist" in t for t in good)


def test_rejected_shows_each_failure_mode() -> None:
    rejected = [r["rejected"] for r in _rows("prefs.jsonl")]
    refusals = [t for t in rejected if "AI" in t or "can't assist" in t or "cannot" in t]
    rambling = [t for t in rejected if len(set(_split(t))) < len(_split(t))]  # a repeated sentence
    assert len(refusals) >= 60 and len(rambling) >= 60
    assert any(len(t.split()) <= 12 for t in refusals) and any(len(t.split()) >= 50 for t in refusals)


def _split(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text.strip())


def test_length_alone_does_not_separate_chosen_from_rejected() -> None:
    rows = _rows("prefs.jsonl")
    chosen = [len(r["chosen"].split()) for r in rows]
    rejected = [len(r["rejected"].split()) for r in rows]
    longer = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)
    assert 0.35 <= longer <= 0.65  # "pick the longer reply" is about a coin flip
    # the ranges overlap: long rejected replies and short chosen ones both exist
    assert max(rejected) > max(chosen) and min(rejected) < min(chosen)
    assert sum(r > max(chosen) * 0.8 for r in rejected) >= 20


def test_examples_encode_without_truncation(tokenizer) -> None:
    # The test tokenizer is byte-level (about 4x the tokens of a BPE model): 1024 here is ~256 BPE tokens.
    from rlhfops.data.encode import encode_demos, encode_prefs

    demos = encode_demos(load_demos(example_path("support_replies/demos.jsonl")), tokenizer, 1024)
    prefs = encode_prefs(load_prefs(example_path("support_replies/prefs.jsonl")), tokenizer, 1024)
    assert (demos.truncated, prefs.truncated) == (0, 0)
    assert len(demos.rows) == 240 and len(prefs.rows) == 400


def _policy_judge():
    """The shipped support-replies spec (what `rlhfops init` writes) and its policy judge."""
    raw = yaml.safe_load(
        (Path(rlhfops.spec.__file__).parent / "templates" / "support_replies.yaml").read_text()
    )
    raw.pop("edge_cases", None)
    spec = TaskSpec(**raw)
    return spec, PolicyJudge(spec.policy)


def test_good_replies_follow_the_specs_policy() -> None:
    """The demonstrations and chosen replies are what the spec's policy judge calls right: no invented
    figure, order number or amount (demonstrations stating a $4.95 return fee taught the model to break
    the policy)."""
    _, judge = _policy_judge()
    good = [(r["prompt"], r["completion"]) for r in _rows("demos.jsonl")]
    good += [(r["prompt"], r["chosen"]) for r in _rows("prefs.jsonl")]
    bad = {reply: judge.violations(p, reply) for p, reply in good if judge.violations(p, reply)}
    assert bad == {}
    assert len(good) == 640


def test_prompts_not_at_fault_name_the_specs_other_criteria() -> None:
    spec, judge = _policy_judge()
    behaviours = {t.behaviour for t in spec.success_criteria.increase + spec.success_criteria.decrease}
    rows = _rows("prompts.jsonl")
    named = {c for r in rows for c in r.get("criteria", [])}
    assert named and named <= behaviours and spec.policy.criterion not in named
    assert sum("criteria" in r for r in rows) == 50


# ---- the hand-written edge cases in edge_demos.jsonl (templates.yaml ``edge_cases``) ----------------------


def _edge_items():
    """(SuiteItem built the way a suite file's row is, the expert's reply) per edge case."""
    from rlhfops.redteam.suite import SuiteItem

    out = []
    for category, spec in _build_module().EDGE_CASES.items():
        for i, pair in enumerate(spec["pairs"]):
            item = SuiteItem(
                id=f"edge-{category}-{i}",
                prompt=pair["prompt"],
                category=category,
                expected=spec["expected"],
                canary=pair.get("canary"),
            )
            out.append((item, pair["completion"]))
    return out


def _redteam_prompts() -> list[str]:
    from rlhfops.redteam.suite import load_suite

    return [it.prompt for it in load_suite("redteam").items]  # both halves


def test_edge_demos_file_holds_the_edge_cases_per_category() -> None:
    items = _edge_items()
    assert Counter(it.category for it, _ in items) == {
        "false_premise_sycophancy": 14,
        "harmful_requests": 10,
        "no_reliable_answer": 10,
        "adversarial_client": 8,
        "prompt_injection": 6,
    }
    assert {it.expected for it, _ in items} == {
        "correct_premise",
        "refuse",
        "hedge",
        "stay_professional",
        "ignore_injection",
    }
    assert all(it.canary and it.canary in it.prompt for it, _ in items if it.category == "prompt_injection")
    rows = _rows("edge_demos.jsonl")
    assert [(r["prompt"], r["completion"]) for r in rows] == [(it.prompt, reply) for it, reply in items]


def test_edge_case_replies_pass_their_categorys_detectors() -> None:
    """Each expert reply passes the red-team detectors of its category: a false claim is corrected (and
    not acted on), a harmful request declined without helping, an unknowable answer hedged, a hostile
    customer answered without abuse or the demanded extra, a pasted instruction ignored."""
    from rlhfops.redteam.detectors import check_item, judge_item

    failed = {
        it.id: [c.reason for c in check_item(it, reply) if not c.passed]
        for it, reply in _edge_items()
        if not judge_item(it, reply)
    }
    assert failed == {}


def test_edge_case_replies_follow_the_policy_in_2_to_4_sentences() -> None:
    _, judge = _policy_judge()
    items = _edge_items()
    checks = {it.id: judge.check(it.prompt, reply) for it, reply in items}
    assert {k: c.violations for k, c in checks.items() if c.violations} == {}
    assert {k: c.sentences for k, c in checks.items() if not c.length_ok} == {}
    # replies do not all open alike (one template would teach one opening)
    openings = [" ".join(reply.split()[:2]) for _, reply in items]
    assert len(set(openings)) >= 32  # 36 of 48 today


def _ngrams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_edge_case_prompts_are_not_red_team_prompts() -> None:
    """No edge prompt is a red-team prompt (either half: its key would put a training demonstration on a
    held-out item) or shares six consecutive words with one."""
    from rlhfops.data.prompt_key import prompt_key

    red = _redteam_prompts()
    assert len(red) == 192
    red_keys = {prompt_key(p) for p in red}
    red_grams = set().union(*(_ngrams(p) for p in red))
    edge = [it.prompt for it, _ in _edge_items()]
    assert [p for p in edge if prompt_key(p) in red_keys] == []
    assert {p[:40]: sorted(_ngrams(p) & red_grams) for p in edge if _ngrams(p) & red_grams} == {}


def test_edge_cases_leave_the_templated_rows_unchanged(monkeypatch) -> None:
    """Appending the edge cases draws nothing from the RNG: without them the build gives the same 240
    templated demonstrations, prefs and prompts."""
    build = _build_module()
    with_edge = build.build_rows()
    monkeypatch.setattr(build, "EDGE_CASES", {})
    without = build.build_rows()
    assert without["edge_demos"] == [] and len(with_edge["edge_demos"]) == 48
    assert len(without["demos"]) == 240 and with_edge["demos"] == without["demos"]
    assert (with_edge["prefs"], with_edge["prompts"]) == (without["prefs"], without["prompts"])


def test_an_edge_prompt_that_repeats_a_templated_one_is_refused(monkeypatch) -> None:
    build = _build_module()
    taken = _rows("prefs.jsonl")[0]["prompt"]
    edge = {"harmful_requests": {"expected": "refuse", "pairs": [{"prompt": taken, "completion": "x. y."}]}}
    monkeypatch.setattr(build, "EDGE_CASES", edge)
    with pytest.raises(ValueError, match="repeats a prompt"):
        build.build_rows()
