"""Every stage that reads prompts honours ``truncation`` (issue 21): rows and counts differ by mode, the
counts reach summary.json, and ``error`` still refuses. Tiny model, byte-level tokenizer."""

from __future__ import annotations

import json

import pytest
from wiring_helpers import make_trainer

from rlhfops.errors import DataError
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.config import DPOConfig, RewardConfig, SFTConfig
from rlhfops.train.dpo import DPOTrainer
from rlhfops.train.ppo import PPOTrainer
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.reward import RewardTrainer
from rlhfops.train.runner import run_stage
from rlhfops.train.sft import SFTTrainer

SHORT, LONG = 6, 3  # rows that fit whole in max_length=128, multi-turn rows that do not


def _prompt(i: int, long: bool) -> list[dict[str, str]]:
    last = {"role": "user", "content": f"Where is parcel {i}?"}
    if not long:
        return [last]
    return [
        {"role": "user", "content": f"Order {i}: " + "the blue kettle arrived broken, " * 2},
        {"role": "assistant", "content": "Sorry to hear that, " * 3},
        last,
    ]


def _rows(kind: str) -> list[dict]:
    rows = []
    for i in range(SHORT + LONG):
        prompt = _prompt(i, long=i >= SHORT)
        if kind == "demos":
            rows.append({"prompt": prompt, "completion": "It ships today."})
        elif kind == "prefs":
            rows.append({"prompt": prompt, "chosen": "It ships today.", "rejected": "No idea."})
        else:
            rows.append({"prompt": prompt})
    return rows


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truncation")
    files = {}
    for kind in ("demos", "prefs", "prompts"):
        files[kind] = tmp / f"{kind}.jsonl"
        files[kind].write_text("".join(json.dumps(r) + "\n" for r in _rows(kind)))
    return tmp, make_tiny_model_dir(tmp / "tiny"), files


def _args(tmp, model, data, name, mode, extra=()):
    return [
        f"model={model}",
        f"data={data}",
        f"output_dir={tmp / name}",
        f"truncation={mode}",
        "max_steps=1",
        "batch_size=2",
        "max_length=128",
        "progress=false",
        "eval_fraction=0.0",
        *extra,
    ]


PPO_EXTRA = ("reward_fn=length_target:4", "minibatch_size=2", "ppo_epochs=1", "max_new_tokens=40")
STAGES = [
    ("sft", SFTTrainer, SFTConfig, "demos", ()),
    ("rm", RewardTrainer, RewardConfig, "prefs", ()),
    ("dpo", DPOTrainer, DPOConfig, "prefs", ()),
    ("ppo", PPOTrainer, PPOConfig, "prompts", PPO_EXTRA),
]


def _prompt_lengths(trainer) -> list[int]:
    rows = trainer.train_rows
    if trainer.stage == "ppo":
        return [len(r) for r in rows]
    if trainer.stage == "dpo":
        rows = [r.pair for r in rows]
    return [len(r.prompt_ids) for r in rows]


@pytest.mark.parametrize(("stage", "trainer_cls", "config_cls", "kind", "extra"), STAGES)
def test_each_stage_honours_the_setting(env, stage, trainer_cls, config_cls, kind, extra) -> None:
    tmp, model, files = env
    seen = {}
    for mode in ("keep_end", "drop"):
        t = make_trainer(
            trainer_cls, config_cls, _args(tmp, model, files[kind], f"{stage}-{mode}", mode, extra)
        )
        seen[mode] = (len(t.train_rows), t.truncation["data"], _prompt_lengths(t))
    keep_rows, keep_counts, keep_lengths = seen["keep_end"]
    drop_rows, drop_counts, _ = seen["drop"]
    assert (keep_rows, drop_rows) == (SHORT + LONG, SHORT)
    assert (keep_counts["whole"], keep_counts["truncated"], keep_counts["dropped"]) == (SHORT, LONG, 0)
    assert (drop_counts["whole"], drop_counts["truncated"], drop_counts["dropped"]) == (SHORT, 0, LONG)
    room = 128 - 40 if stage == "ppo" else 128
    assert max(keep_lengths) <= room
    with pytest.raises(DataError, match="too long|longer than"):
        make_trainer(
            trainer_cls, config_cls, _args(tmp, model, files[kind], f"{stage}-error", "error", extra)
        )


def test_counts_in_summary_json(env) -> None:
    tmp, model, files = env
    run = tmp / "rm-summary"
    result = run_stage("rm", None, _args(tmp, model, files["prefs"], "rm-summary", "keep_end"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["truncation"] == result.summary["truncation"]
    assert summary["truncation"]["data"] == {
        "mode": "keep_end",
        "whole": SHORT,
        "truncated": LONG,
        "dropped": 0,
        "replies_cut": 0,
    }
    assert summary["train_rows"] == SHORT + LONG


def test_rl_prompt_edge_in_every_mode(env) -> None:
    """A prompt exactly max_length - max_new_tokens long is untouched; one token over is truncated,
    dropped or refused."""
    from rlhfops.models.tiny import tiny_tokenizer
    from rlhfops.train.ppo import load_prompt_ids

    tmp, _model, _files = env
    path = tmp / "one-prompt.jsonl"
    path.write_text(json.dumps({"prompt": _prompt(0, long=True)}) + "\n")
    tok = tiny_tokenizer()
    (ids,), _ = load_prompt_ids(str(path), tok, 10_000, None, "error")
    n = len(ids)
    for mode in ("keep_end", "drop", "error"):
        got, counts = load_prompt_ids(str(path), tok, n, None, mode)
        assert got == [ids] and counts["whole"] == 1, mode
    got, counts = load_prompt_ids(str(path), tok, n - 1, None, "keep_end")
    assert counts["truncated"] == 1 and len(got[0]) <= n - 1
    with pytest.raises(DataError, match="all 1 prompts were dropped by truncation=drop"):
        load_prompt_ids(str(path), tok, n - 1, None, "drop")
    with pytest.raises(
        DataError, match=f"1 of 1 prompts are longer than max_length - max_new_tokens = {n - 1}"
    ):
        load_prompt_ids(str(path), tok, n - 1, None, "error")
