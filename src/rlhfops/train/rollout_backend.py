"""Where the RL stage's rollouts are generated: the built-in sampler (default) or a separate engine (vLLM).

``rollout_backend: builtin`` samples with :func:`rlhfops.models.generate.generate` on the policy itself:
the same weights by construction, and log-probs equal to the training forward's (so the critic-free
estimators reuse them instead of a second forward pass).

``rollout_backend: vllm`` generates with a vLLM engine colocated on each process's GPU, as OpenRLHF and
verl do for throughput. The engine holds its own copy of the weights, so before every iteration's
generation the policy's current weights are pushed into it (``sync``: LoRA adapters merged into the base
weights first and unmerged after, parameter names as the base model spells them, then the engine's
prefix cache reset so no KV block computed with the old weights is reused). Its log-probs come from
other kernels, so the rollout recomputes them with the training forward (``exact_logprobs = False``).
Each iteration's generation and sync seconds go into metrics.jsonl and their means into summary.json.

The vLLM path needs the vllm package and a CUDA GPU; asked for without them it is a one-line ConfigError.
It has not run on a GPU yet (docs/scaling.md); on CPU the interface and the sync logic are tested with
a fake engine (tests/train/test_rollout_backend.py).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch

from rlhfops.errors import ConfigError
from rlhfops.models.generate import GenerationOutput, generate, left_pad
from rlhfops.models.loading import base_model_dir

if TYPE_CHECKING:
    from rlhfops.train.ppo_config import PPOConfig


class Engine(Protocol):
    """A generation engine with its own copy of the weights (vLLM's ``LLM`` behind :class:`VLLMEngine`)."""

    def load_weights(self, weights: Iterator[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights with these (base-model parameter names)."""

    def generate(
        self,
        prompts: list[list[int]],
        *,
        num_samples: int,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[list[int]]:
        """Response token ids, ``num_samples`` rows per prompt in prompt order, each ending at EOS or the
        length limit."""


class BuiltinBackend:
    """The built-in sampler on the policy itself: nothing to sync."""

    name = "builtin"
    exact_logprobs = True

    def __init__(self) -> None:
        self.last_generate_seconds = 0.0
        self.last_sync_seconds = 0.0

    def generate(self, lm: Any, prompts: list[list[int]], **kw: Any) -> GenerationOutput:
        t0 = time.perf_counter()
        out = generate(lm, prompts, **kw)
        self.last_generate_seconds = time.perf_counter() - t0
        return out


def engine_weights(lm: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's weights as the engine's base model names them: a peft model's adapters are merged in
    (and unmerged once the iteration is consumed), adapter tensors themselves skipped."""
    merged = hasattr(lm, "merge_adapter") and hasattr(lm, "peft_config")
    if merged:
        lm.merge_adapter()
    try:
        for name, param in lm.named_parameters():
            if merged:
                if "lora_" in name:
                    continue
                name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            yield name, param.detach()
    finally:
        if merged:
            lm.unmerge_adapter()


def output_from_tokens(
    prompts: list[list[int]],
    responses: list[list[int]],
    num_samples: int,
    eos_token_id: int,
    pad_token_id: int,
) -> GenerationOutput:
    """The built-in sampler's output layout for an engine's responses (rows as ``[p for p in prompts for _
    in range(num_samples)]``): left-padded prompts, responses cut after the first EOS and padded. Log-probs
    are zeros: the rollout recomputes them (``exact_logprobs = False``)."""
    if len(responses) != len(prompts) * num_samples:
        raise ValueError(f"engine returned {len(responses)} responses for {len(prompts)} x {num_samples}")
    expanded = [p for p in prompts for _ in range(num_samples)]
    ids, mask = left_pad(expanded, pad_token_id)
    cut = [r[: r.index(eos_token_id) + 1] if eos_token_id in r else list(r) for r in responses]
    n = max(1, max(len(r) for r in cut))
    tokens = torch.full((len(cut), n), pad_token_id, dtype=torch.long)
    resp_mask = torch.zeros((len(cut), n), dtype=torch.long)
    for i, r in enumerate(cut):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        resp_mask[i, : len(r)] = 1
    has_eos = torch.tensor([bool(r) and r[-1] == eos_token_id for r in cut])
    return GenerationOutput(
        sequences=torch.cat([ids, tokens], dim=1),
        prompt_length=ids.shape[1],
        response_ids=tokens,
        response_mask=resp_mask,
        logprobs=torch.zeros(tokens.shape, dtype=torch.float32),
        has_eos=has_eos,
        prompt_mask=mask,
        entropy=None,
    )


class EngineBackend:
    """A separate engine: the policy's weights are pushed into it before every generation."""

    exact_logprobs = False

    def __init__(self, engine: Engine, name: str = "vllm") -> None:
        self.engine = engine
        self.name = name
        self.syncs = 0
        self.last_generate_seconds = 0.0
        self.last_sync_seconds = 0.0

    def sync(self, lm: Any) -> None:
        t0 = time.perf_counter()
        with torch.no_grad():
            self.engine.load_weights(engine_weights(lm))
        self.syncs += 1
        self.last_sync_seconds = time.perf_counter() - t0

    def generate(
        self,
        lm: Any,
        prompts: list[list[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        eos_token_id: int,
        pad_token_id: int,
        generator: torch.Generator | None = None,
        num_samples: int = 1,
        row_ids: list[int] | None = None,
        rows_total: int | None = None,
    ) -> GenerationOutput:
        # row_ids / rows_total (the built-in sampler's per-global-row noise, which makes a DDP run sample
        # what one process would) do not reach the engine: it draws with its own seed on each process.
        del row_ids, rows_total
        self.sync(lm)  # every iteration: the policy changed in the last update
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
        t0 = time.perf_counter()
        responses = self.engine.generate(
            prompts,
            num_samples=num_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )
        self.last_generate_seconds = time.perf_counter() - t0
        return output_from_tokens(prompts, responses, num_samples, eos_token_id, pad_token_id)


class VLLMEngine:
    """vLLM's offline ``LLM`` colocated on this process's GPU (untested here: no GPU, no vllm)."""

    def __init__(self, model_dir: str, dtype: str, gpu_memory_utilization: float, max_model_len: int) -> None:
        from vllm import LLM

        self.llm = LLM(
            model=model_dir,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
        )

    def load_weights(self, weights: Iterator[tuple[str, torch.Tensor]]) -> None:
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, tensor in weights:  # one tensor at a time: no second full copy of the weights
            model.load_weights([(name, tensor)])
        self.llm.reset_prefix_cache()  # KV blocks computed with the old weights must not be reused

    def generate(
        self,
        prompts: list[list[int]],
        *,
        num_samples: int,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[list[int]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=num_samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed
        )
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [list(o.token_ids) for out in outs for o in out.outputs]


def vllm_engine(config: PPOConfig, distributed_type: str) -> Engine:
    """A colocated vLLM engine for ``config``, or a one-line ConfigError saying why there cannot be one."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "rollout_backend=vllm: the vllm package is not installed (pip install vllm on a CUDA machine); "
            "or set rollout_backend: builtin"
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            "rollout_backend=vllm needs a CUDA GPU and none is visible; set rollout_backend: builtin"
        )
    if distributed_type not in ("NO", "MULTI_GPU"):
        raise ConfigError(
            f"rollout_backend=vllm with {distributed_type}: the engine needs the whole weights on each GPU "
            "(one process or DDP); set rollout_backend: builtin"
        )
    model_dir = str(base_model_dir(config.model))  # the engine starts from the base; syncs bring the policy
    return VLLMEngine(model_dir, config.dtype, config.vllm_gpu_memory_utilization, config.max_length)


def make_backend(config: PPOConfig, distributed_type: str) -> BuiltinBackend | EngineBackend:
    """The rollout backend ``config.rollout_backend`` names."""
    if config.rollout_backend == "builtin":
        return BuiltinBackend()
    return EngineBackend(vllm_engine(config, distributed_type), "vllm")
