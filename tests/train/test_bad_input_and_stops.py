"""Bad input gets one clear line and exit 2 with nothing half-written; a non-finite loss stops the run."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_train import write_demos, write_prefs

from rlhfops.cli.main import main
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.base import StepStats
from rlhfops.train.sft import SFTTrainer


def _cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ex:
        main(args)
    return ex.value.code, capsys.readouterr().err


def _sets(**kw) -> list[str]:
    out = []
    for k, v in kw.items():
        out += ["--set", f"{k}={v}"]
    return out


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_model_dir(tmp_path / "tiny")


def test_malformed_json_names_file_and_line(tmp_path, tiny, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", \n')
    out = tmp_path / "run"
    code, err = _cli(
        ["train", "sft", *_sets(model=tiny, data=data, output_dir=out, progress="false")], capsys
    )
    assert code == 2 and f"{data}:2: not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert not out.exists(), "nothing half-written"


def test_missing_field_names_file_line_field(tmp_path, tiny, capsys):
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    code, err = _cli(["train", "rm", *_sets(model=tiny, data=data, output_dir=tmp_path / "r")], capsys)
    assert code == 2 and f"{data}:2:rejected" in err


def test_empty_dataset(tmp_path, tiny, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n")
    code, err = _cli(["train", "sft", *_sets(model=tiny, data=data, output_dir=tmp_path / "r")], capsys)
    assert code == 2 and "empty" in err


def test_prompt_longer_than_max_length(tmp_path, tiny, capsys):
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": "x" * (400 if i % 2 else 5), "completion": "ok"} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, err = _cli(
        ["train", "sft", *_sets(model=tiny, data=data, output_dir=tmp_path / "r", max_length=128)], capsys
    )
    assert code == 2 and "3 of 6 rows" in err and "max_length=128" in err


def test_unknown_config_key_names_closest(tmp_path, tiny, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tiny}\ndata: x.jsonl\nbta: 0.1\n")
    code, err = _cli(["train", "dpo", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown key 'bta'; did you mean 'beta'?" in err


def test_model_that_does_not_exist(tmp_path, capsys):
    data = write_prefs(tmp_path / "p.jsonl")
    code, err = _cli(["train", "dpo", *_sets(model="org/not-local", data=data)], capsys)
    assert code == 2 and "never downloads weights" in err


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, tiny, capsys, monkeypatch):
    real = SFTTrainer.micro_loss
    calls = {"n": 0}

    def poisoned(self, rows, global_units):
        stats = real(self, rows, global_units)
        calls["n"] += 1
        if calls["n"] >= 3:  # third step
            return StepStats(loss=stats.loss * torch.tensor(float("nan")), sums=stats.sums)
        return stats

    monkeypatch.setattr(SFTTrainer, "micro_loss", poisoned)
    out = tmp_path / "run"
    data = write_demos(tmp_path / "d.jsonl")
    sets = _sets(
        model=tiny, data=data, output_dir=out, save_every=2, max_steps=5, batch_size=4, progress="false"
    )
    code, err = _cli(["train", "sft", *sets], capsys)
    assert code == 2 and "step 3: loss is nan" in err and "step-000002" in err
    assert (out / "checkpoints" / "step-000002" / "trainable.safetensors").exists()
    assert not (out / "summary.json").exists() and not (out / "final").exists()
