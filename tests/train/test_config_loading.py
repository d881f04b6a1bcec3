"""The typed config loader: YAML + --set, unknown keys named with the closest valid one, values checked."""

from __future__ import annotations

import pytest

from rlhfops.config import describe_fields, load_config, parse_overrides
from rlhfops.errors import ConfigError
from rlhfops.train.config import DPOConfig, SFTConfig


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: demos.jsonl\nlearning_rate: 0.001\nlora:\n  enabled: true\n")
    cfg = load_config(SFTConfig, path, ["max_steps=3", "lora.r=4", "model=/x/y"])
    assert cfg.data == "demos.jsonl"
    assert cfg.learning_rate == 0.001
    assert cfg.max_steps == 3
    assert cfg.lora.enabled is True and cfg.lora.r == 4
    assert cfg.model == "/x/y"


def test_unknown_key_names_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: d.jsonl\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rat'; did you mean 'learning_rate'"):
        load_config(SFTConfig, path)


def test_a_run_directorys_config_yaml_loads_back(tmp_path):
    """`train sft --config RUN/config.yaml` reruns a run; the same file for another stage is refused."""
    from rlhfops.train.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    cfg = load_config(SFTConfig, None, ["data=d.jsonl", "max_steps=3"])
    run.write_config("sft", cfg.model_dump(mode="json"))
    again = load_config(SFTConfig, run.config_path, stage="sft")
    assert again.data == "d.jsonl" and again.max_steps == 3
    with pytest.raises(ConfigError, match=r"written by a 'sft' run; use `rlhfops train sft --config"):
        load_config(DPOConfig, run.config_path, stage="dpo")
    with pytest.raises(ConfigError, match=r"unknown key 'stage'"):  # without a stage to match: still unknown
        load_config(SFTConfig, run.config_path)


def test_unknown_nested_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'lora.rank'"):
        load_config(SFTConfig, None, ["data=d", "lora.rank=3"])


def test_bad_value_names_field_and_value():
    with pytest.raises(ConfigError, match=r"beta=-1: .*greater than 0"):
        load_config(DPOConfig, None, ["data=d", "beta=-1"])


def test_bad_yaml_gives_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: d\nbeta: [1, 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        load_config(DPOConfig, path)


def test_cross_field_check_includes_values():
    with pytest.raises(ConfigError, match=r"batch_size=6 is not divisible by gradient_accumulation_steps=4"):
        load_config(SFTConfig, None, ["data=d", "batch_size=6", "gradient_accumulation_steps=4"])


def test_adaptive_kl_horizon_too_small_for_the_rollout_is_refused():
    from rlhfops.train.ppo_config import PPOConfig

    base = ["data=d", "reward_fn=length", "batch_size=4", "samples_per_prompt=4", "minibatch_size=4"]
    with pytest.raises(ConfigError, match=r"kl_horizon=3 is too small .* 16 responses"):
        load_config(PPOConfig, None, [*base, "kl_horizon=3"])
    assert load_config(PPOConfig, None, [*base, "kl_horizon=4"]).kl_horizon == 4
    # a fixed controller never uses the horizon
    assert load_config(PPOConfig, None, [*base, "kl_horizon=3", "kl_controller=fixed"]).kl_horizon == 3


def test_override_parsing_types():
    out = parse_overrides(["a=1e-5", "b=true", "c=hello", "d.e=3"])
    assert out == {"a": 1e-5, "b": True, "c": "hello", "d": {"e": 3}}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["novalue"])


def test_every_field_documented():
    for cls in (SFTConfig, DPOConfig):
        for key, _default, desc in describe_fields(cls):
            assert desc, f"{cls.__name__}.{key} has no description"


def test_gradient_checkpointing_modes_from_set():
    from rlhfops.models.checkpointing import SelectiveCheckpointing

    assert load_config(SFTConfig, None, ["data=d", "gradient_checkpointing=false"]).checkpointing() is False
    assert load_config(SFTConfig, None, ["data=d", "gradient_checkpointing=true"]).checkpointing() is True
    cfg = load_config(
        SFTConfig, None, ["data=d", "gradient_checkpointing=selective", "checkpoint_full_share=0.5"]
    )
    assert cfg.checkpointing() == SelectiveCheckpointing(0.5)
    assert load_config(SFTConfig, None, ["data=d", "gradient_checkpointing=selective"]).checkpointing() == (
        SelectiveCheckpointing(0.0)
    )
    with pytest.raises(
        ConfigError, match=r"gradient_checkpointing='sometimes': .*valid boolean.*; or .*'selective'"
    ):
        load_config(SFTConfig, None, ["data=d", "gradient_checkpointing=sometimes"])
