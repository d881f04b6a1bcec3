"""bench/hh_rm.py (issue 21): rlhfops' reward model vs TRL's RewardTrainer on the shipped HH-RLHF slice.

The fast tests run the script's real path on the tiny random model (both sides, one round) and its pieces
in isolation: the row selection (rows that fit whole, a held-out set that more training pairs never touch),
the interleaving and median ratio, the target's edge, the config overrides and the margin. The figures on
the bundled model are in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rlhfops.measures.intervals import wilson_interval

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("hh_rm", ROOT / "bench" / "hh_rm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from rlhfops.models.tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def _check_side(side: dict, pairs: int, curve_at: list[int]) -> None:
    assert [c["pairs_seen"] for c in side["curve"]] == curve_at
    for point in side["curve"]:
        assert point["pairs"] == pairs and 0 <= point["correct"] <= pairs
        assert point["accuracy"] == point["correct"] / pairs
        assert point["ci95"] == list(wilson_interval(point["correct"], pairs))  # the measures module's
    assert side["accuracy"] == side["curve"][-1]["accuracy"] and side["ci95"] == side["curve"][-1]["ci95"]
    assert side["wall_seconds"] > 0 and side["cpu_seconds"] > 0 and side["first_loss"] > 0


def test_the_bench_runs_both_sides_on_the_tiny_model(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    bench = _bench()
    out = tmp_path / "hh.json"
    argv = ["--model", str(tiny_dir), "--train-pairs", "8", "--eval-pairs", "6", "--batch", "4"]
    argv += ["--max-length", "512", "--rounds", "1", "--json", str(out)]
    result = bench.main(argv)
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1]) == result == json.loads(out.read_text())
    for side in ("rlhfops", "trl"):
        _check_side(result[side], 6, [0, 4, 8])
    # the same starting weights score the same pairs the same way on both sides
    assert result["rlhfops"]["curve"][0]["correct"] == result["trl"]["curve"][0]["correct"]
    assert result["first_losses_agree"] is True  # same head, same first batch
    assert result["ratio_wall"] > 0 and result["ratio_cpu"] > 0 and len(result["ratios_cpu"]) == 1
    assert result["steps"] == 2 and result["data"]["train_pairs"] == 8 and result["data"]["eval_pairs"] == 6
    assert isinstance(result["target_met"], bool) and len(result["load_average_before"]) == 3
    assert "# round 1 rlhfops" in printed.err and "# round 1 trl" in printed.err
    settings = result["rlhfops"]["settings"]  # the defaults: full fine-tuning at --lr, no margin
    assert settings["lora"] is False and settings["learning_rate"] == 2e-5 and settings["margins"] == []
    # the setting is on by default, but the data has no margins: the printed settings say none was used
    assert settings["use_margin_setting"] is True and settings["use_margin"] is False
    assert settings["margin_note"] == "margins absent from the data: not used"
    assert settings["trainable_params"] == settings["all_params"] > 0


def test_set_and_margin_reach_the_rlhfops_run(tiny_dir: Path, tmp_path: Path) -> None:
    """The experiments' settings (LoRA at a higher learning rate, a margin) are in the run that trained,
    not only parsed: the child reports its config and its model's trainable parameters."""
    bench = _bench()
    argv = ["--model", str(tiny_dir), "--train-pairs", "8", "--eval-pairs", "6", "--batch", "4"]
    argv += ["--max-length", "512", "--rounds", "1", "--sides", "rlhfops", "--margin", "0.5"]
    argv += ["--set", "lora.enabled=true", "--set", "lora.r=4", "--set", "learning_rate=2e-4"]
    result = bench.main(argv)
    assert "trl" not in result and "ratio_cpu" not in result
    settings = result["rlhfops"]["settings"]
    assert settings["lora"] is True and settings["lora_r"] == 4 and settings["learning_rate"] == 2e-4
    assert 0 < settings["trainable_params"] < settings["all_params"] / 2  # an adapter, not the trunk
    assert settings["use_margin"] is True and settings["margins"] == [0.5]
    assert settings["margin_note"] == "margins [0.5] used in the loss"
    assert result["margin"] == 0.5 and result["rlhfops_overrides"][0] == "lora.enabled=true"


def _fake_run(seconds: dict[str, list[float]], calls: list[tuple[str, int]], acc: dict[str, float]):
    def run_side(side: str, tmp: Path, i: int) -> dict:
        calls.append((side, i))
        curve = [{"pairs_seen": 8, "accuracy": acc[side], "ci95": [acc[side] - 0.1, acc[side] + 0.1]}]
        s = seconds[side][i]
        return {
            "wall_seconds": s, "cpu_seconds": s / 2, "eval_cpu_seconds": 0.0, "peak_rss_mb": 1.0,
            "losses": [0.7], "curve": curve if i == 0 else [], "checkpointing": True,
        }  # fmt: skip

    return run_side


def test_sides_interleave_and_the_ratio_is_the_median(monkeypatch, tiny_dir: Path) -> None:
    bench = _bench()
    calls: list[tuple[str, int]] = []
    seconds = {"rlhfops": [10.0, 10.0, 10.0], "trl": [30.0, 12.0, 20.0]}
    monkeypatch.setattr(bench, "run_side", _fake_run(seconds, calls, {"rlhfops": 0.6, "trl": 0.6}))
    argv = ["--model", str(tiny_dir), "--train-pairs", "8", "--eval-pairs", "4", "--batch", "4"]
    result = bench.main(argv + ["--max-length", "512", "--rounds", "3"])
    assert calls == [("rlhfops", 0), ("trl", 0), ("rlhfops", 1), ("trl", 1), ("rlhfops", 2), ("trl", 2)]
    assert result["ratios_wall"] == [3.0, 1.2, 2.0] and result["ratio_wall"] == 2.0  # median, not mean
    assert result["ratio_cpu"] == 2.0 and result["rlhfops"]["wall_seconds"] == 10.0
    assert result["trl"]["wall_seconds"] == 20.0 and result["target_met"] is True


@pytest.mark.parametrize(
    ("ours", "trl_seconds", "met"),
    [
        (0.5, 20.0, True),  # accuracy exactly at TRL's interval's low end (0.6 - 0.1), faster
        (0.49, 20.0, False),  # just below TRL's interval
        (0.6, 9.0, False),  # as accurate but slower
    ],
)
def test_the_target_edge(monkeypatch, tiny_dir: Path, ours: float, trl_seconds: float, met: bool) -> None:
    bench = _bench()
    seconds = {"rlhfops": [10.0], "trl": [trl_seconds]}
    monkeypatch.setattr(bench, "run_side", _fake_run(seconds, [], {"rlhfops": ours, "trl": 0.6}))
    argv = ["--model", str(tiny_dir), "--train-pairs", "8", "--eval-pairs", "4", "--batch", "4"]
    assert bench.main(argv + ["--max-length", "512", "--rounds", "1"])["target_met"] is met


def test_rows_that_fit_whole_and_a_fixed_held_out_set(tiny_dir: Path, tmp_path: Path) -> None:
    bench = _bench()
    from rlhfops.datasets import hh_rlhf_harmless_path
    from rlhfops.models.loading import load_tokenizer

    tok = load_tokenizer(str(tiny_dir))

    def longest(r: dict) -> int:
        texts = [
            tok.apply_chat_template(r["prompt"] + [{"role": "assistant", "content": a}], tokenize=False)
            for a in (r["chosen"], r["rejected"])
        ]
        return max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    def prepared(train: int, margin: str | None = None) -> tuple[list, list, dict]:
        work = tmp_path / f"w{train}-{margin}"
        work.mkdir()
        argv = ["--model", str(tiny_dir), "--data", str(hh_rlhf_harmless_path()), "--max-length", "400"]
        argv += ["--train-pairs", str(train), "--eval-pairs", "5"] + (["--margin", margin] if margin else [])
        info = bench.prepare_data(bench.parse(argv), work)
        read = [
            [json.loads(x) for x in (work / f).read_text().splitlines()]
            for f in ("train.jsonl", "held.jsonl")
        ]
        return read[0], read[1], info

    train, held, info = prepared(6)
    assert len(train) == 6 and len(held) == 5 and info["too_long"] > 0  # byte tokens: many rows too long
    assert all(longest(r) <= 400 for r in train + held)
    more, held_again, _ = prepared(12)
    assert more[:6] == train and held_again == held  # more training pairs never move the held-out set
    assert not {json.dumps(r) for r in more} & {json.dumps(r) for r in held}
    assert "margin" not in train[0]
    with_margin, _, _ = prepared(6, "0.5")
    assert [r["margin"] for r in with_margin] == [0.5] * 6


def test_overrides_and_the_trl_rows_keep_what_rlhfops_reads(tmp_path: Path) -> None:
    bench = _bench()
    assert bench.overrides(["lora.enabled=true", "learning_rate=2e-4", "lora.r=8"]) == {
        "lora": {"enabled": True, "r": 8},
        "learning_rate": 2e-4,
    }
    with pytest.raises(SystemExit, match="expected key=value"):
        bench.overrides(["lora.enabled"])
    import vs_trl

    data = tmp_path / "p.jsonl"
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    rows = [
        {"prompt": msgs, "chosen": "x", "rejected": "y", "margin": 0.5},
        {"prompt": "q", "chosen": "x", "rejected": "y"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = sorted(vs_trl._trl_rows("rm", data), key=lambda r: len(r["prompt"]))
    assert out[0]["prompt"] == [{"role": "user", "content": "q"}] and "margin" not in out[0]
    assert out[1]["prompt"] == msgs and out[1]["margin"] == 0.5


def test_margin_applies_only_when_on_and_the_data_has_margins() -> None:
    """The trainer's rule the bench reports (rlhfops.train.reward.margin_applies), both sides of each edge."""
    from types import SimpleNamespace as Row

    from rlhfops.train.reward import margin_applies

    plain, with_margin = [Row(margin=None), Row(margin=None)], [Row(margin=None), Row(margin=0.5)]
    assert margin_applies(True, with_margin) is True
    assert margin_applies(True, plain) is False  # on, but nothing to subtract
    assert margin_applies(False, with_margin) is False  # margins in the data, setting off
    assert margin_applies(True, []) is False
