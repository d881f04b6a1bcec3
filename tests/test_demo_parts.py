"""Parts of `rlhfops demo` on tiny models (the full demo trains the bundled model: `make demo`)."""

from __future__ import annotations

from rlhfops.demo import _stage_overrides, held_out_replies
from rlhfops.models.tiny import make_tiny_model_dir


def test_held_out_replies_for_each_model(tmp_path):
    a = make_tiny_model_dir(tmp_path / "a", seed=1)
    b = make_tiny_model_dir(tmp_path / "b", seed=2)
    rows = held_out_replies(
        {"base": str(a), "tuned": str(b)}, ["Where is my parcel?", "Refund please"], 8, str(a)
    )
    assert [r["prompt"] for r in rows] == ["Where is my parcel?", "Refund please"]
    assert all(isinstance(r["base"], str) and isinstance(r["tuned"], str) for r in rows)


def test_demo_settings_are_valid_configs():
    from rlhfops.config import load_config
    from rlhfops.train.runner import STAGES

    for quick in (True, False):
        for stage, sets in _stage_overrides(quick).items():
            load_config(STAGES[stage], None, ["data=x.jsonl", *sets])


def test_demo_command_prints_table_and_replies(monkeypatch, capsys, tmp_path):
    import rlhfops.demo as demo
    from rlhfops.cli.main import main

    fake = demo.DemoResult(
        out_dir=tmp_path,
        runs={k: tmp_path / k for k in ("sft", "rm", "dpo")},
        summaries={
            "sft": {"eval": {"base_eval_loss": 2.1, "eval_loss": 1.2}},
            "rm": {"eval": {"eval_accuracy": 0.95, "reward_length_correlation": 0.1}},
            "dpo": {"eval": {"eval_accuracy": 0.92}},
        },
        samples=[
            {
                "prompt": "Where is my parcel?",
                "base": "I cannot help.",
                "sft": "Sorry!",
                "dpo": "<script>x</script>",
            }
        ],
        seconds=61.0,
    )
    monkeypatch.setattr(demo, "run_demo", lambda out, quick=False: fake)
    try:
        main(["demo", "--quick"])
    except SystemExit as ex:
        assert ex.code in (0, None)
    out = capsys.readouterr().out
    assert "held-out loss 2.100 -> 1.200" in out and "0.95" in out and "0.92" in out
    assert "<script>x</script>" in out and "Where is my parcel?" in out
