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
