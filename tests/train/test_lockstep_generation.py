"""The sampler's lock-step rule (FSDP): every process calls the sharded forward as often as the busiest one.

Under FSDP every call of the policy gathers weights from every process, so all processes must call it
the same number of times. ``generate(lockstep=f)`` asks ``f`` ("are my rows finished?" -> "are every
process's rows finished?") at every step; a process whose rows have all ended keeps calling the model
with one placeholder row until ``f`` says every process is done. Here ``f`` stands in for the other
processes (no process group): the model calls are counted through ``ShardedLM`` (the route the RL stage
takes under FSDP), and the responses must be the ones sampled without the rule.
"""

from __future__ import annotations

import pytest
import torch

from rlhfops.models.generate import generate, keep_stepping
from rlhfops.models.loading import load_causal_lm, load_tokenizer
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.ppo_model import ShardedLM

MAX_NEW = 6


def test_keep_stepping_alone_stops_when_this_process_is_done_or_at_the_limit():
    assert keep_stepping(0, MAX_NEW, False, None)
    assert not keep_stepping(0, MAX_NEW, True, None)
    assert keep_stepping(MAX_NEW - 2, MAX_NEW, False, None)
    assert not keep_stepping(MAX_NEW - 1, MAX_NEW, False, None)  # the last step: never another


def test_keep_stepping_in_lockstep_follows_every_process():
    asked: list[bool] = []

    def others_busy(done_here: bool) -> bool:
        asked.append(done_here)
        return False  # another process still has a row generating

    assert keep_stepping(0, MAX_NEW, True, others_busy)  # done here, not everywhere: step on
    assert keep_stepping(0, MAX_NEW, False, lambda done: done)
    assert not keep_stepping(0, MAX_NEW, True, lambda done: done)  # done everywhere
    assert asked == [True]  # this process's flag is what it passes on
    assert not keep_stepping(MAX_NEW - 1, MAX_NEW, False, others_busy)  # the limit needs no all-reduce
    assert asked == [True]


class CountingRoot:
    """Stands in for the sharded root: runs ``inside`` and counts the calls (= weight gathers)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, inside):
        self.calls += 1
        return inside()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = make_tiny_model_dir(tmp_path_factory.mktemp("stops") / "tiny", eos_boost=1.5)
    tok = load_tokenizer(str(path), padding_side="left")
    return load_causal_lm(str(path), dtype="float32"), tok


def _prompts(tok, n: int) -> list[list[int]]:
    """Chat prompts; they share the template's system prompt, so one process alone prefills it once."""
    messages = [[{"role": "user", "content": f"Hello {i}, my parcel is late."}] for i in range(n)]
    return [
        tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=False)
        for m in messages
    ]


def _sample(model, prompts, lockstep=None, seed: int = 8):
    """(output, model calls) with seed 8: the 3 responses end with EOS after 3, 2 and 3 tokens."""
    lm, tok = model
    root = CountingRoot()
    out = generate(
        ShardedLM(root, lm),
        prompts,
        max_new_tokens=MAX_NEW,
        temperature=1.0,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(seed),
        lockstep=lockstep,
    )
    return out, root.calls


class OtherProcesses:
    """Stands in for the all-reduce (True only if every process says True): the first question is "does
    every process prefill a shared prefix?" (``prefix``), the next ones "is every process done?" (the
    others are done after ``busy_steps`` steps)."""

    def __init__(self, prefix: bool, busy_steps: int) -> None:
        self.prefix, self.busy_steps = prefix, busy_steps
        self.asked: list[bool] = []

    def __call__(self, flag: bool) -> bool:
        self.asked.append(flag)
        if len(self.asked) == 1:
            return flag and self.prefix
        return flag and len(self.asked) - 1 >= self.busy_steps


def test_a_process_done_early_keeps_calling_the_model_until_every_process_is_done(model):
    prompts = _prompts(model[1], 3)
    alone, calls_alone = _sample(model, prompts)
    steps_here = alone.response_ids.shape[1]
    assert bool(alone.has_eos.all()) and steps_here == 3  # this process's rows end early
    assert calls_alone == 1 + 1 + (steps_here - 1)  # shared prefix, prefill, one call per further step

    others = OtherProcesses(prefix=True, busy_steps=MAX_NEW)  # another process runs to the length limit
    out, calls = _sample(model, prompts, others)
    assert calls == 1 + 1 + (MAX_NEW - 1)  # as many calls (weight gathers) as the busiest process
    assert others.asked == [True] + [False] * (steps_here - 1) + [True] * (MAX_NEW - steps_here)
    # the responses are the ones sampled alone: the placeholder steps write nothing
    assert torch.equal(out.sequences, alone.sequences)
    assert torch.equal(out.response_mask, alone.response_mask)
    torch.testing.assert_close(out.logprobs, alone.logprobs, rtol=0, atol=1e-6)

    others = OtherProcesses(prefix=True, busy_steps=4)  # another process is done one step later
    out, calls = _sample(model, prompts, others)
    assert calls == calls_alone + 1 and torch.equal(out.sequences, alone.sequences)


def test_lockstep_stops_with_the_last_process(model):
    prompts = _prompts(model[1], 3)
    alone, calls_alone = _sample(model, prompts)
    out, calls = _sample(model, prompts, lambda flag: flag)  # every other process is done as early
    assert calls == calls_alone and torch.equal(out.sequences, alone.sequences)


def test_the_shared_prefix_prefill_runs_only_when_every_process_runs_it(model):
    prompts = _prompts(model[1], 3)
    alone, calls_alone = _sample(model, prompts)
    others = OtherProcesses(prefix=False, busy_steps=0)  # another process has no shared prefix
    out, calls = _sample(model, prompts, others)
    assert calls == calls_alone - 1  # no prefix prefill: the whole prompts in one prefill
    assert torch.equal(out.sequences, alone.sequences)
    torch.testing.assert_close(out.logprobs, alone.logprobs, rtol=0, atol=1e-5)
