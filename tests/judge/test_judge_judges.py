"""Judges: rule rubric, verdict parsing, the OpenAI-compatible judge against a local stub server,
the reward-model judge and the local causal-LM judge on tiny random models."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhfops.errors import UserError
from rlhfops.judge import Judge, JudgeSettings, make_judge
from rlhfops.judge.http import JudgeError, OpenAIJudge, parse_score, parse_verdict
from rlhfops.judge.rule import RuleJudge

GOOD = "I'm sorry your towels arrived torn. I've sent a replacement; it will arrive in 2-3 days."
REFUSAL = "I'm sorry, but I can't help with that."


def test_rule_judge_prefers_apology_with_remedy_and_scores_criteria():
    j = RuleJudge()
    assert isinstance(j, Judge)
    assert j.score("p", GOOD) == pytest.approx(1.0 + 1.5 + 0.5)
    assert j.score("p", REFUSAL) == pytest.approx(1.0 - 2.0)
    assert j.judge("p", GOOD, REFUSAL) == "A" and j.judge("p", REFUSAL, GOOD) == "B"
    assert j.judge("p", GOOD, GOOD) == "tie"
    assert j.score("p", REFUSAL, "refusal") == 1.0 and j.score("p", GOOD, "refusal") == 0.0
    assert j.score("p", "thanks " * 20) < j.score("p", "thanks for the message, we will look into it.")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("[[A]]", "A"),
        ("After comparing, response B is clearer.\n\n[[B]]", "B"),
        ("Both are fine. [[tie]]", "tie"),
        ("Verdict: **B**", "B"),
        ("The winner is Response A.", "A"),
        ("  b.  ", "B"),
        ("Equal", "tie"),
        ("[[ a ]]", "A"),
    ],
)
def test_parse_verdict(text: str, verdict: str):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text", ["I cannot decide.", "[[A]] no wait [[B]]", ""])
def test_parse_verdict_refuses_to_guess(text: str):
    with pytest.raises(JudgeError):
        parse_verdict(text)


def test_parse_score():
    assert parse_score("Reasoning...\n[[7]]") == 7.0
    assert parse_score("Score: 8.5") == 8.5
    assert parse_score("6") == 6.0
    with pytest.raises(JudgeError):
        parse_score("great reply")


class _Stub(BaseHTTPRequestHandler):
    replies: list[tuple[int, str]] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        status, content = type(self).replies.pop(0)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode() if status == 200 else b'{"error": "boom"}')

    def log_message(self, *a):
        pass


@pytest.fixture
def stub_server():
    _Stub.replies, _Stub.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_judge_against_a_local_stub_server(stub_server: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    _Stub.replies = [(200, "Response B is better.\n[[B]]"), (503, ""), (200, "Score: 9"), (200, "hmm")]
    j = make_judge("openai", JudgeSettings(url=stub_server, model="judge-7b", api_key_env="JUDGE_KEY"))
    assert isinstance(j, OpenAIJudge)
    assert j.judge("customer msg", "reply one", "reply two") == "B"
    first = _Stub.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "judge-7b" and first["body"]["temperature"] == 0
    content = first["body"]["messages"][0]["content"]
    assert "reply one" in content and "reply two" in content and "customer msg" in content
    assert j.score("p", "r", "politeness") == 9.0  # after one 503 retried
    assert len(_Stub.seen) == 3 and "politeness" in _Stub.seen[2]["body"]["messages"][0]["content"]
    with pytest.raises(JudgeError, match="no verdict"):
        j.judge("p", "a", "b")


def test_openai_judge_client_errors_are_one_line(stub_server: str):
    _Stub.replies = [(401, "")]
    j = OpenAIJudge(stub_server, "m", api_key_env="NO_SUCH_ENV_VAR")
    with pytest.raises(JudgeError, match="HTTP 401"):
        j.judge("p", "a", "b")
    assert _Stub.seen[0]["auth"] is None
    dead = OpenAIJudge("http://127.0.0.1:9", "m", retries=1, timeout=2)
    with pytest.raises(JudgeError, match="failed after 2 attempts"):
        dead.score("p", "r")


def test_make_judge_spellings_and_errors():
    assert make_judge("rule").name == "rule"
    j = make_judge("openai:gpt-x@http://h:1/v1")
    assert j.model == "gpt-x" and j.url == "http://h:1/v1"
    with pytest.raises(UserError, match="--judge"):
        make_judge("magic")
    with pytest.raises(UserError, match="needs url and model"):
        make_judge("openai")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory):
    from rlhfops.models.heads import RewardModel
    from rlhfops.models.tiny import make_tiny_model_dir, tiny_tokenizer

    base = tmp_path_factory.mktemp("judge")
    lm = make_tiny_model_dir(base / "lm", seed=1)
    rm = RewardModel.from_causal_lm(str(lm))
    rm.set_normalization(0.5, 2.0)
    rm.save_pretrained(base / "rm", tokenizer=tiny_tokenizer())
    return lm, base / "rm"


def test_reward_model_judge_matches_a_direct_forward(tiny_dirs):
    import torch

    from rlhfops.models.heads import RewardModel

    _, rm_dir = tiny_dirs
    j = make_judge(f"rm:{rm_dir}")
    assert j.name == f"rm:{rm_dir}"
    prompts, replies = (
        ["Where is my order?", "Refund please"],
        ["It ships today.", "Done, sorry for the wait!"],
    )
    got = j.scores(prompts, replies)
    rm = RewardModel.from_pretrained(rm_dir).eval()
    for p, r, g in zip(prompts, replies, got, strict=True):
        ids = torch.tensor([j.encode(p, r)])
        want = (float(rm(ids)[0, -1].detach()) - 0.5) / 2.0
        assert g == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert j.score(prompts[0], replies[0]) == pytest.approx(got[0], abs=1e-5)  # batch == single
    v = j.judge(prompts[0], replies[0], replies[1])
    assert v == ("A" if got[0] > j.score(prompts[0], replies[1]) else "B")


def test_local_lm_judge_reads_next_token_probabilities(tiny_dirs):
    import math

    from rlhfops.judge.base import DEFAULT_CRITERION
    from rlhfops.judge.http import PAIR_PROMPT

    lm_dir, _ = tiny_dirs
    j = make_judge(f"lm:{lm_dir}")
    q = PAIR_PROMPT.format(criterion=DEFAULT_CRITERION, prompt="x", a="one", b="two")
    lp = j.next_token_logprobs(q, "[[")
    assert math.isclose(float(lp.exp().sum()), 1.0, rel_tol=1e-4)
    a, b = float(lp[j._first_token("A")]), float(lp[j._first_token("B")])
    j.tie_margin = 0.0
    assert j.judge("x", "one", "two") == ("A" if a > b else "B")
    j.tie_margin = abs(a - b) + 1e-6
    assert j.judge("x", "one", "two") == "tie"
    s = j.score("msg", "reply", "politeness")
    assert 0.0 < s < 1.0 and s == j.score("msg", "reply", "politeness")
