"""A judge as the RL reward (``reward_judge``): any judge the evaluation side accepts scores the rollouts.

The judge object is built by the caller (the CLI registers :func:`rlhfops.judge.make_judge` through
:func:`register_judge_factory`): ``train/`` sits below ``judge/`` in the layering and only needs its two
methods, ``judge(prompt, a, b) -> "A" | "B" | "tie"`` and ``score(prompt, response) -> float``, plus
``name``.

Modes (``judge_mode``):

* ``pointwise`` -- the judge's ``score`` of each response (a rubric / reward-model / 1-10 LM score).
* ``group`` -- a pairwise judge turned into a per-response score the way RLOO / GRPO groups use it: each
  response is compared with every other response to the same prompt, **in both orders** (A/B then B/A,
  so a judge that favours a position gains nothing: the position bias control of Zheng et al. 2023,
  MT-Bench, sec. 3.3), and its score is its win rate, ties counting half:
  ``s_i = sum_{j != i} [w(i,j) + w'(i,j)] / (2 (k - 1))`` in [0, 1]. Needs ``samples_per_prompt >= 2``
  for training (the config refuses less). The held-out evaluation samples one response per prompt: such
  a lone response gets the judge's pointwise ``score`` instead (counted in ``judge_stats.json`` as
  ``pointwise_singletons``; the eval ``score`` metric is then on the judge's pointwise scale).

Calls: the distinct uncached calls of a batch run on ``judge_concurrency`` threads; each call is tried
``judge_retries + 1`` times with exponential backoff (``judge_backoff * 2**attempt`` seconds) and must
finish within ``judge_timeout`` seconds. A call that still fails stops the run with one
:class:`JudgeRewardError` line (never a made-up 0 reward). Results are cached on disk by
(kind, judge name, prompt, responses) in ``judge_cache.jsonl`` of the run directory, so a resumed run does
not pay twice; ``judge_stats.json`` holds the calls made, cache hits, tokens (when the judge reports
``tokens``) and seconds spent.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import torch

from rlhfops.data.files import atomic_output
from rlhfops.errors import ConfigError, UserError
from rlhfops.train.reward_sources import Responses

_FACTORY: Callable[[str], Any] | None = None


class JudgeRewardError(UserError):
    """The reward judge failed or timed out: the run stops rather than train on a made-up reward."""


def register_judge_factory(factory: Callable[[str], Any]) -> None:
    """Let ``reward_judge: SPEC`` build judges with ``factory(SPEC)`` (the CLI passes ``make_judge``)."""
    global _FACTORY
    _FACTORY = factory


def build_judge(spec: str) -> Any:
    if _FACTORY is None:
        raise ConfigError(
            f"reward_judge={spec!r}: no judge factory registered; run through the rlhfops CLI, or call "
            "rlhfops.train.judge_reward.register_judge_factory(rlhfops.judge.make_judge) first"
        )
    return _FACTORY(spec)


def _key(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


class JudgeReward:
    """Scores a :class:`Responses` batch with a judge (see the module docstring)."""

    def __init__(
        self,
        judge: Any,
        mode: str = "group",
        run_dir: str | Path | None = None,
        concurrency: int = 4,
        retries: int = 2,
        backoff: float = 0.5,
        timeout: float = 120.0,
        decode: Callable[[list[int]], str] | None = None,
    ) -> None:
        if mode not in ("pointwise", "group"):
            raise ConfigError(f"judge_mode={mode!r}: use pointwise or group")
        self.judge, self.mode, self.decode = judge, mode, decode
        self.concurrency, self.retries, self.backoff, self.timeout = concurrency, retries, backoff, timeout
        self.name = str(getattr(judge, "name", type(judge).__name__))
        self.cache: dict[str, Any] = {}
        self.stats = {"calls": 0, "cache_hits": 0, "tokens": 0, "seconds": 0.0, "failures": 0}
        self._lock = threading.Lock()
        self.cache_path = Path(run_dir) / "judge_cache.jsonl" if run_dir else None
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self.cache[rec["k"]] = rec["v"]
                except (ValueError, KeyError, TypeError):  # a torn last line of a killed run
                    continue

    # ---- calls -----------------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - any judge failure is retried, then reported
                last = str(err).splitlines()[0] if str(err) else type(err).__name__
                with self._lock:
                    self.stats["failures"] += 1
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        raise JudgeRewardError(
            f"reward judge {self.name}: {what} failed after {self.retries + 1} attempt(s) ({last}); "
            "the run stops (no reward is made up); fix the judge and resume with --resume"
        )

    def _run(self, calls: dict[str, tuple[Callable[[], Any], str]]) -> None:
        """Run the uncached calls concurrently; store each result in the cache (memory + disk)."""
        todo = {k: c for k, c in calls.items() if k not in self.cache}
        self.stats["cache_hits"] += len(calls) - len(todo)
        if not todo:
            return
        start = time.monotonic()
        tokens_before = int(getattr(self.judge, "tokens", 0) or 0)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = {k: pool.submit(self._call, fn, what) for k, (fn, what) in todo.items()}
            deadline = start + self.timeout
            for k, fut in futures.items():
                try:
                    value = fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    raise JudgeRewardError(
                        f"reward judge {self.name}: {todo[k][1]} timed out after {self.timeout:g}s "
                        "(judge_timeout); the run stops (no reward is made up)"
                    ) from None
                self._store(k, value)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self.stats["calls"] += len(todo)
            self.stats["seconds"] = round(self.stats["seconds"] + time.monotonic() - start, 3)
            self.stats["tokens"] += int(getattr(self.judge, "tokens", 0) or 0) - tokens_before
            self._write_stats()

    def _store(self, key: str, value: Any) -> None:
        self.cache[key] = value
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"k": key, "v": value}) + "\n")

    def _write_stats(self) -> None:
        if self.cache_path:
            with atomic_output(self.cache_path.with_name("judge_stats.json")) as tmp:
                tmp.write_text(json.dumps({"judge": self.name, "mode": self.mode, **self.stats}, indent=1))

    # ---- scoring ---------------------------------------------------------------------------------
    def _prompts(self, batch: Responses) -> list[str]:
        if batch.prompt_texts is not None:
            return batch.prompt_texts
        if self.decode is None:
            raise ConfigError("reward_judge needs the prompt text (no decoder given)")
        return [self.decode(ids) for ids in batch.prompt_ids]

    def score(self, batch: Responses) -> torch.Tensor:
        prompts = self._prompts(batch)
        if self.mode == "pointwise":
            calls = {}
            keys = []
            for p, r in zip(prompts, batch.texts, strict=True):
                k = _key("score", self.name, p, r)
                keys.append(k)
                calls[k] = (
                    lambda p=p, r=r: float(self.judge.score(p, r)),
                    f"scoring a response to {p[:40]!r}",
                )
            self._run(calls)
            return torch.tensor([float(self.cache[k]) for k in keys])
        return self._group_scores(batch, prompts)

    def _group_scores(self, batch: Responses, prompts: list[str]) -> torch.Tensor:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, ids in enumerate(batch.prompt_ids):
            groups.setdefault(tuple(ids), []).append(i)
        calls, pairs, single = {}, [], []
        for idx in groups.values():
            if len(idx) == 1:  # a lone response (held-out evaluation): the judge's pointwise score
                i = idx[0]
                k = _key("score", self.name, prompts[i], batch.texts[i])
                single.append((i, k))
                p, r = prompts[i], batch.texts[i]
                calls[k] = (
                    lambda p=p, r=r: float(self.judge.score(p, r)),
                    f"scoring a response to {p[:40]!r}",
                )
            p = prompts[idx[0]]
            for i in idx:
                for j in idx:
                    if i == j:
                        continue
                    a, b = batch.texts[i], batch.texts[j]
                    k = _key("pair", self.name, p, a, b)
                    pairs.append((i, j, k))
                    calls[k] = (
                        lambda p=p, a=a, b=b: str(self.judge.judge(p, a, b)),
                        f"comparing replies to {p[:40]!r}",
                    )
        self.stats["pointwise_singletons"] = self.stats.get("pointwise_singletons", 0) + len(single)
        self._run(calls)
        wins = torch.zeros(len(batch.texts))
        for i, j, k in pairs:  # every ordered pair: (i as A, j as B), and later (j as A, i as B)
            v = self.cache[k]
            if v == "A":
                wins[i] += 1.0
            elif v == "B":
                wins[j] += 1.0
            elif v == "tie":
                wins[i] += 0.5
                wins[j] += 0.5
            else:
                raise JudgeRewardError(f"reward judge {self.name}: verdict {v!r} is not A, B or tie")
        sizes = torch.tensor([float(len(groups[tuple(ids)])) for ids in batch.prompt_ids])
        out = wins / (2.0 * (sizes - 1.0).clamp(min=1.0))
        for i, k in single:
            out[i] = float(self.cache[k])
        return out


def judge_reward_from_config(
    cfg: Any, run_dir: str | Path | None, decode: Callable[[list[int]], str]
) -> JudgeReward:
    """The PPO config's ``reward_judge`` and ``judge_*`` settings -> a :class:`JudgeReward`."""
    return JudgeReward(
        build_judge(cfg.reward_judge),
        cfg.judge_mode,
        run_dir,
        cfg.judge_concurrency,
        cfg.judge_retries,
        cfg.judge_backoff,
        cfg.judge_timeout,
        decode=decode,
    )
