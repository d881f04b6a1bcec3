"""A judge as the RL reward (train/judge_reward.py, issue 22), against a local OpenAI-compatible stub
server in the test process (no network) and the local LM judge on the tiny model."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from rlhfops.judge.http import OpenAIJudge
from rlhfops.train.judge_reward import JudgeReward, JudgeRewardError
from rlhfops.train.reward_sources import Responses


class Stub:
    """What the stub endpoint does: verdict rule, delay, failures, and what it saw."""

    def __init__(self) -> None:
        self.requests = 0
        self.fail_first = 0
        self.delay = 0.0
        self.mode = "good"  # good: prefers the reply holding "good"; always_a: position-biased; score
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()


def _answer(stub: Stub, content: str) -> str:
    if stub.mode == "score":
        return "[[7]]"
    if stub.mode == "always_a":
        return "[[A]]"
    a = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", content, re.S).group(1)
    b = re.search(r"\[Response B\]\n(.*?)\n\nWhich", content, re.S).group(1)
    ga, gb = "good" in a, "good" in b
    return "[[tie]]" if ga == gb else ("[[A]]" if ga else "[[B]]")


@pytest.fixture()
def server():
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with stub.lock:
                stub.requests += 1
                n = stub.requests
                stub.inflight += 1
                stub.max_inflight = max(stub.max_inflight, stub.inflight)
            try:
                time.sleep(stub.delay)
                if n <= stub.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                text = _answer(stub, body["messages"][0]["content"])
                out = json.dumps(
                    {"choices": [{"message": {"content": text}}], "usage": {"total_tokens": 10}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            finally:
                with stub.lock:
                    stub.inflight -= 1

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    stub.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield stub
    httpd.shutdown()
    httpd.server_close()


def _judge(stub: Stub) -> OpenAIJudge:
    return OpenAIJudge(stub.url, "stub", api_key_env=None, timeout=10, retries=0)  # retries: JudgeReward's


def _batch(texts: list[str], k: int) -> Responses:
    prompts = [[i // k + 1] for i in range(len(texts))]
    return Responses(prompts, [[1]] * len(texts), texts, [f"prompt {p[0]}" for p in prompts])


def test_group_win_rate_both_orders_cache_and_stats(server, tmp_path: Path) -> None:
    texts = ["good 1", "bad 1", "bad 2", "good 2", "good 3", "bad 3"]  # two prompts, k = 3
    r = JudgeReward(_judge(server), "group", tmp_path, concurrency=4)
    scores = r.score(_batch(texts, 3))
    # prompt 1: "good 1" beats both bads in both orders (4/4); each bad beats nobody, ties the other (2 x 0.5)
    # prompt 2: two goods tie each other (2 x 0.5) and beat the bad: (2 + 1) / 4
    assert torch.allclose(scores, torch.tensor([1.0, 0.25, 0.25, 0.75, 0.75, 0.0]), rtol=1e-6)
    assert server.requests == 12  # 2 prompts x 3 x 2 ordered pairs: both orders
    stats = json.loads((tmp_path / "judge_stats.json").read_text())
    assert stats["calls"] == 12 and stats["tokens"] == 120 and stats["seconds"] >= 0
    again = JudgeReward(_judge(server), "group", tmp_path)  # a resumed run: read from the disk cache
    assert torch.equal(again.score(_batch(texts, 3)), scores) and server.requests == 12
    assert again.stats["cache_hits"] == 12 and again.stats["calls"] == 0
    elsewhere = JudgeReward(_judge(server), "group", tmp_path / "other")
    elsewhere.score(_batch(texts, 3))
    assert server.requests == 24  # another run directory has its own cache


def test_position_bias_cancels_in_both_orders(server, tmp_path: Path) -> None:
    server.mode = "always_a"
    scores = JudgeReward(_judge(server), "group", None).score(_batch(["x", "y", "z"], 3))
    assert torch.allclose(scores, torch.full((3,), 0.5))  # with one order "x" would get 1.0


def test_pointwise_uses_the_judges_score(server) -> None:
    server.mode = "score"
    scores = JudgeReward(_judge(server), "pointwise", None).score(_batch(["a", "b"], 1))
    assert scores.tolist() == [7.0, 7.0] and server.requests == 2
    lone = JudgeReward(_judge(server), "group", None)  # held-out eval: one sample per prompt -> pointwise
    assert (
        lone.score(_batch(["a", "b"], 1)).tolist() == [7.0, 7.0] and lone.stats["pointwise_singletons"] == 2
    )


def test_concurrency_limit_on_both_sides(server) -> None:
    server.delay = 0.2
    JudgeReward(_judge(server), "group", None, concurrency=2).score(_batch(["a", "b", "c"], 3))  # 6 calls
    assert server.max_inflight == 2
    server.max_inflight = 0
    JudgeReward(_judge(server), "group", None, concurrency=1).score(_batch(["d", "e", "f"], 3))
    assert server.max_inflight == 1


def test_retries_with_backoff_then_one_line_stop(server) -> None:
    server.fail_first, server.mode = 1, "score"
    t0 = time.monotonic()
    out = JudgeReward(_judge(server), "pointwise", None, retries=1, backoff=0.4).score(_batch(["a"], 1))
    assert time.monotonic() - t0 >= 0.4 and server.requests == 2  # one retry after the backoff
    server.requests, server.fail_first = 0, 2
    with pytest.raises(
        JudgeRewardError, match=r"failed after 2 attempt\(s\) \(.*HTTP 500.*the run stops"
    ) as err:
        JudgeReward(_judge(server), "pointwise", None, retries=1, backoff=0).score(_batch(["a"], 1))
    assert "\n" not in str(err.value)
    assert out.shape == (1,)


def test_timeout_stops_the_run(server) -> None:
    server.delay, server.mode = 1.0, "score"
    with pytest.raises(JudgeRewardError, match=r"timed out after 0.3s \(judge_timeout\)"):
        JudgeReward(_judge(server), "pointwise", None, timeout=0.3).score(_batch(["a"], 1))
    server.delay = 0.1
    assert JudgeReward(_judge(server), "pointwise", None, timeout=5).score(_batch(["b"], 1)).tolist() == [7.0]


def test_config_needs_exactly_one_reward_and_group_needs_k2() -> None:
    from rlhfops.errors import ConfigError
    from rlhfops.train.ppo_config import PPOConfig

    base = {"model": "m", "data": "d.jsonl", "kl_controller": "fixed"}
    with pytest.raises(ConfigError, match="exactly one of reward_model, reward_fn and reward_judge"):
        PPOConfig(**base, reward_fn="length", reward_judge="rule")
    with pytest.raises(ConfigError, match="judge_mode=group needs samples_per_prompt >= 2"):
        PPOConfig(**base, reward_judge="rule", samples_per_prompt=1)
    assert PPOConfig(**base, reward_judge="rule", samples_per_prompt=2).judge_mode == "group"
    assert PPOConfig(**base, reward_judge="rule", judge_mode="pointwise").samples_per_prompt == 1


def test_every_judge_setting_reaches_the_reward(tmp_path: Path) -> None:
    from rlhfops.train.judge_reward import judge_reward_from_config, register_judge_factory
    from rlhfops.train.ppo_config import PPOConfig

    seen = []

    class Named:
        def __init__(self, spec: str) -> None:
            seen.append(spec)
            self.name = spec

    register_judge_factory(Named)
    cfg = PPOConfig(
        model="m",
        data="d.jsonl",
        kl_controller="fixed",
        reward_judge="openai:x@http://127.0.0.1:9/v1",
        judge_mode="pointwise",
        judge_concurrency=3,
        judge_retries=4,
        judge_backoff=0.25,
        judge_timeout=50,
    )
    sc = judge_reward_from_config(cfg, tmp_path, str)
    assert seen == ["openai:x@http://127.0.0.1:9/v1"] and sc.mode == "pointwise"
    assert (sc.concurrency, sc.retries, sc.backoff, sc.timeout) == (3, 4, 0.25, 50.0)
    assert sc.cache_path == tmp_path / "judge_cache.jsonl"


def test_ppo_runs_with_the_local_lm_judge_on_the_tiny_model(tmp_path: Path) -> None:
    from helpers_train import write_prompts
    from wiring_helpers import make_trainer

    from rlhfops.judge import make_judge
    from rlhfops.models.tiny import make_tiny_model_dir
    from rlhfops.train.judge_reward import register_judge_factory
    from rlhfops.train.ppo import PPOTrainer
    from rlhfops.train.ppo_config import PPOConfig

    model = make_tiny_model_dir(tmp_path / "tiny")
    register_judge_factory(make_judge)
    args = [
        f"model={model}",
        f"data={write_prompts(tmp_path / 'p.jsonl', n=6)}",
        f"output_dir={tmp_path / 'run'}",
        f"reward_judge=lm:{model}",
        "advantage_estimator=rloo",
        "samples_per_prompt=2",
        "max_steps=1",
        "batch_size=2",
        "minibatch_size=4",
        "ppo_epochs=1",
        "max_new_tokens=4",
        "max_length=160",
        "progress=false",
        "eval_fraction=0.2",
        "kl_controller=fixed",
    ]
    trainer = make_trainer(PPOTrainer, PPOConfig, args)
    sc = trainer.scorer
    assert isinstance(sc, JudgeReward) and sc.name == f"lm:{model}" and sc.mode == "group"
    assert sc.cache_path == tmp_path / "run" / "judge_cache.jsonl"
    trainer.run_all()
    stats = json.loads((tmp_path / "run" / "judge_stats.json").read_text())
    assert stats["calls"] >= 4 and stats["judge"] == f"lm:{model}"  # 2 prompts x 2 ordered pairs at least
    lines = (tmp_path / "run" / "judge_cache.jsonl").read_text().splitlines()
    values = [json.loads(x)["v"] for x in lines]
    assert {v for v in values if isinstance(v, str)} <= {"A", "B", "tie"}
    assert stats["pointwise_singletons"] >= 1  # the held-out evaluation's lone responses
    assert all(0.0 <= v <= 1.0 for v in values if isinstance(v, float))  # P(Yes) of the local LM judge
