"""Rollout backends (issue 23): the built-in sampler by default, a separate engine (vLLM) whose weights are
synced from the policy before every iteration. vLLM is not installed here: the engine is a fake that holds
its own copy of the model and checks, each time it is asked to generate, that its copy computes the live
policy's logits -- a skipped or stale sync fails the run."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers_train import write_prompts

from rlhfops.errors import ConfigError
from rlhfops.models.generate import generate
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train import ppo, rollout_backend
from rlhfops.train.ppo import PPOTrainer
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.rollout_backend import EngineBackend, output_from_tokens, vllm_engine
from rlhfops.train.runner import run_stage


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("rollout")
    return make_tiny_model_dir(tmp / "model"), write_prompts(tmp / "prompts.jsonl", n=12)


def _args(tiny: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    model, prompts = tiny
    return [
        f"model={model}",
        f"data={prompts}",
        f"output_dir={out}",
        "reward_fn=length_target:6",
        "advantage_estimator=rloo",
        "samples_per_prompt=2",
        "max_steps=3",
        "batch_size=2",
        "minibatch_size=4",
        "ppo_epochs=1",
        "max_new_tokens=6",
        "max_length=128",
        "learning_rate=1e-2",
        "eval_fraction=0",
        "save_every=100",
        "progress=false",
        *extra,
    ]


class FakeEngine:
    """What vLLM is to the trainer: a second copy of the model. ``load_weights`` copies into it (names must
    be the base model's: strict); ``generate`` first checks its copy against the live policy's logits, then
    samples on its own copy."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.loads: list[dict[str, torch.Tensor]] = []
        self.live = None  # set to a callable returning the policy's LM once the trainer is built
        self.checked = 0

    def load_weights(self, weights) -> None:
        got = {name: t.detach().clone() for name, t in weights}
        self.loads.append(got)
        self.model.load_state_dict(got, strict=True)

    def generate(self, prompts, *, num_samples, max_new_tokens, temperature, top_p, seed):
        lm = self.live()
        x = torch.tensor([prompts[0]])
        with torch.no_grad():
            theirs, ours = lm(input_ids=x).logits, self.model(input_ids=x).logits
        assert torch.allclose(ours, theirs, atol=1e-5), "engine generates with stale weights"
        self.checked += 1
        out = generate(
            self.model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
            eos_token_id=2, pad_token_id=0, generator=torch.Generator().manual_seed(seed),
            num_samples=num_samples,
        )  # fmt: skip
        mask = out.response_mask.bool()
        return [out.response_ids[i][mask[i]].tolist() for i in range(mask.shape[0])]


def _with_fake_engine(monkeypatch, model_dir: Path) -> tuple[FakeEngine, list]:
    """rollout_backend=vllm builds the fake; the fake sees the trainer's live policy; rollouts recorded."""
    fake = FakeEngine(str(model_dir))
    monkeypatch.setattr(rollout_backend, "vllm_engine", lambda config, distributed_type: fake)
    build = PPOTrainer.build_model

    def build_and_watch(self) -> None:
        build(self)
        fake.live = lambda: self.accelerator.unwrap_model(self.model).lm

    monkeypatch.setattr(PPOTrainer, "build_model", build_and_watch)
    rollouts: list = []
    make = ppo.make_rollout

    def recording(*a, **kw):
        rollouts.append(make(*a, **kw))
        return rollouts[-1]

    monkeypatch.setattr(ppo, "make_rollout", recording)
    return fake, rollouts


def test_builtin_is_the_default_and_its_cost_is_recorded(tiny, tmp_path: Path) -> None:
    result = run_stage("ppo", overrides=_args(tiny, tmp_path / "run"))
    rollout = result.summary["rollout"]
    assert rollout["backend"] == "builtin" and rollout["iterations"] == 3
    assert rollout["generate_seconds_per_iteration"] > 0 and rollout["sync_seconds_per_iteration"] == 0
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())["rollout"]
    assert on_disk == rollout
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["generate_seconds"] > 0 for r in rows if r.get("step", 0) >= 1)


@pytest.mark.parametrize(
    ("estimator", "lora"),
    [("gae", False), ("gae", True), ("rloo", False)],
    ids=["gae-full", "gae-lora", "rloo-full"],
)
def test_the_engine_gets_the_policy_weights_before_every_iteration(
    tiny, tmp_path, monkeypatch, estimator, lora
) -> None:
    fake, rollouts = _with_fake_engine(monkeypatch, tiny[0])
    extra = ["rollout_backend=vllm", f"advantage_estimator={estimator}"]
    extra += ["samples_per_prompt=1", "minibatch_size=2"] if estimator == "gae" else []
    extra += ["lora.enabled=true", "lora.r=4"] if lora else []
    result = run_stage("ppo", overrides=_args(tiny, tmp_path / "run", *extra))
    assert fake.checked == 3 and len(fake.loads) == 3  # one sync per iteration, each checked live
    first, last = fake.loads[0], fake.loads[-1]
    assert set(first) == set(fake.model.state_dict())  # base-model names, adapters merged in
    if estimator == "gae":  # the value head's noise moves the policy (rloo: equal scores, no gradient)
        assert any(not torch.equal(first[k], last[k]) for k in first)  # the engine followed the policy
    rollout = result.summary["rollout"]
    assert rollout["backend"] == "vllm" and rollout["iterations"] == 3
    assert rollout["sync_seconds_per_iteration"] > 0 and rollout["generate_seconds_per_iteration"] > 0
    for roll in rollouts:  # the engine's log-probs are not trusted: recomputed by the training forward
        assert (roll.old_logps[roll.mask.bool()] < 0).all()


def test_vllm_asked_for_without_vllm_is_a_one_line_error(tiny, tmp_path: Path) -> None:
    assert importlib.util.find_spec("vllm") is None  # the premise: vllm is not installed here
    with pytest.raises(ConfigError) as err:
        run_stage("ppo", overrides=_args(tiny, tmp_path / "run", "rollout_backend=vllm"))
    assert "vllm package is not installed" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def _fake_vllm(monkeypatch, calls: dict) -> None:
    """A stand-in ``vllm`` module with the API the adapter uses (LLM, SamplingParams, load_weights,
    reset_prefix_cache), as TRL's colocate mode calls it; CUDA reported available."""

    class Inner:
        def load_weights(self, weights):
            calls.setdefault("loaded", []).extend(name for name, _ in weights)

    class LLM:
        def __init__(self, **kw):
            calls["llm"] = kw
            runner = types.SimpleNamespace(model=Inner())
            executor = types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner))
            self.llm_engine = types.SimpleNamespace(model_executor=executor)

        def reset_prefix_cache(self):
            calls["reset"] = calls.get("reset", 0) + 1

        def generate(self, requests, params, use_tqdm=False):
            calls["params"] = params
            out = types.SimpleNamespace
            return [out(outputs=[out(token_ids=[5, 2]) for _ in range(params.n)]) for _ in requests]

    module = types.ModuleType("vllm")
    module.LLM = LLM
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a)
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_the_vllm_adapter_builds_syncs_and_generates_through_vllms_api(tiny, monkeypatch) -> None:
    calls: dict = {}
    _fake_vllm(monkeypatch, calls)
    cfg = PPOConfig(
        model=str(tiny[0]),
        data="p",
        reward_fn="length",
        rollout_backend="vllm",
        vllm_gpu_memory_utilization=0.42,
    )
    backend = EngineBackend(vllm_engine(cfg, "MULTI_GPU"))
    assert calls["llm"]["gpu_memory_utilization"] == 0.42  # the setting reaches the engine
    assert calls["llm"]["model"] == str(tiny[0])
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny[0])
    out = backend.generate(
        lm, [[1, 7, 8], [1, 9]], max_new_tokens=4, temperature=0.7, top_p=0.9, eos_token_id=2, pad_token_id=0,
        generator=torch.Generator().manual_seed(0), num_samples=2,
    )  # fmt: skip
    assert calls["loaded"] == [n for n, _ in lm.named_parameters()] and calls["reset"] == 1
    assert (calls["params"].n, calls["params"].temperature, calls["params"].top_p) == (2, 0.7, 0.9)
    assert out.response_ids.tolist() == [[5, 2]] * 4 and out.has_eos.all()


def test_vllm_without_a_gpu_or_under_sharding_is_a_one_line_error(tiny, monkeypatch) -> None:
    _fake_vllm(monkeypatch, {})
    cfg = PPOConfig(model=str(tiny[0]), data="p", reward_fn="length", rollout_backend="vllm")
    with pytest.raises(ConfigError, match="FSDP: the engine needs the whole weights"):
        vllm_engine(cfg, "FSDP")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        vllm_engine(cfg, "NO")


def test_the_vllm_memory_share_is_refused_without_the_vllm_backend() -> None:
    with pytest.raises(
        ConfigError, match="vllm_gpu_memory_utilization=0.5 is read only with rollout_backend"
    ):
        PPOConfig(data="p", reward_fn="length", vllm_gpu_memory_utilization=0.5)
    assert PPOConfig(data="p", reward_fn="length", rollout_backend="vllm", vllm_gpu_memory_utilization=0.5)
    saved = PPOConfig(data="p", reward_fn="length").model_dump(mode="json")  # a run's config.yaml: every key
    assert PPOConfig.model_validate(saved).vllm_gpu_memory_utilization == 0.3


def test_engine_responses_take_the_samplers_layout() -> None:
    out = output_from_tokens([[1, 7], [1]], [[5, 2, 9], [6, 6], [2], [4]], 2, eos_token_id=2, pad_token_id=0)
    assert out.prompt_length == 2 and out.sequences.shape == (4, 4)
    assert out.prompt_mask.tolist() == [[1, 1], [1, 1], [0, 1], [0, 1]]
    assert out.response_ids.tolist() == [[5, 2], [6, 6], [2, 0], [4, 0]]  # cut after EOS, padded
    assert out.response_mask.tolist() == [[1, 1], [1, 1], [1, 0], [1, 0]]
    assert out.has_eos.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="3 responses for 2 x 2"):
        output_from_tokens([[1], [1]], [[2], [2], [2]], 2, eos_token_id=2, pad_token_id=0)
