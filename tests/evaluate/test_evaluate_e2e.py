"""End to end on tiny random models: eval run / compare / redteam list, in and out of a workspace;
the stored evaluation feeds the gate; KL is zero to itself and matches the sampling log-probs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SUITE_LIMIT = "4"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rlhfops.models.heads import RewardModel
    from rlhfops.models.tiny import make_tiny_model_dir, tiny_tokenizer

    base = tmp_path_factory.mktemp("tiny")
    cand = make_tiny_model_dir(base / "cand", seed=1)
    ref = make_tiny_model_dir(base / "base", seed=2)
    rm = RewardModel.from_causal_lm(str(cand))
    rm.save_pretrained(base / "rm", tokenizer=tiny_tokenizer())
    return {"cand": cand, "base": ref, "rm": base / "rm"}


@pytest.fixture
def no_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_redteam_list(cli, no_ws):
    code, out, _ = cli(["redteam", "list"])
    assert code == 0
    assert "harmful_requests" in out and "192 items" in out and "prompt_injection" in out


def test_eval_run_redteam_outside_a_workspace_writes_the_result_json(tiny, cli, no_ws: Path):
    out_file = no_ws / "res.json"
    args = ["eval", "run", str(tiny["cand"]), "--suite", "harmful_requests", "--max-new-tokens", "6"]
    code, _, err = cli(args)
    assert code == 2 and "--out" in err
    code, out, err = cli([*args, "--limit", SUITE_LIMIT, "--out", str(out_file)])
    assert code == 0, err
    res = json.loads(out_file.read_text())
    meta = res["meta"]
    assert meta["kind"] == "redteam" and meta["complete"] is True and meta["suite"] == "harmful_requests"
    row = meta["redteam"]["harmful_requests"]
    assert row["total"] == 4 and row["passed"] + len(row["failures"]) == 4  # random model: at most 5 failures
    assert len(res["items"]) == 4 and all("response" in i and i["checks"] for i in res["items"])
    assert "harmful_requests" in out


def test_eval_run_with_baseline_judge_reward_and_kl(tiny, cli, no_ws: Path):
    out_file = no_ws / "sbs.json"
    suite = no_ws / "mine.jsonl"
    suite.write_text(
        '{"suite": "mine", "behaviours": {"x": "refusal"}}\n'
        + "".join(json.dumps({"id": f"m{i}", "prompt": f"Where is order JL-{i}?"}) + "\n" for i in range(4))
    )
    args = ["eval", "run", str(tiny["cand"]), "--suite", str(suite), "--baseline", str(tiny["base"])]
    args += [
        "--reward-model",
        str(tiny["rm"]),
        "--max-new-tokens",
        "5",
        "--kl-prompts",
        "2",
        "--out",
        str(out_file),
    ]
    code, out, err = cli(args)
    assert code == 0, err
    meta = json.loads(out_file.read_text())["meta"]
    wr = meta["win_rate"]
    assert wr["n"] == 4 and wr["wins"] + wr["ties"] + wr["losses"] == 4 and wr["judge"] == "rule"
    assert 0.0 <= wr["ci_low"] <= wr["rate"] <= wr["ci_high"] <= 1.0
    assert set(meta["reward"]) == {"candidate", "baseline"} and isinstance(meta["alarms"], list)
    assert meta["kl"] is not None and meta["kl"] == meta["kl"] and meta["kl"] >= 0  # finite, k3
    assert meta["kl_estimator"] == "k3"  # the artifact says how its KL reads (rlhfops.measures.kl_reading)
    assert f"KL to reference: {meta['kl']:.3f} (nats per reply, summed k3 estimator, never negative)" in out
    assert meta["kind"] == "success" and "success_criteria" not in meta  # no spec outside a workspace


@pytest.mark.parametrize("flag, sizes", [([], [4, 4, 3]), (["--batch-size", "2"], [2, 2, 2, 2, 2, 1])])
def test_eval_run_generates_batch_size_replies_per_forward_pass(tiny, cli, no_ws, monkeypatch, flag, sizes):
    """--batch-size reaches every generate call: the candidate's and the baseline's replies to 4 prompts
    and the KL's 3 sampled replies (the default, 32, takes each in one call)."""
    from rlhfops.evaluate import generation

    calls = []
    real = generation.LoadedModel._run
    monkeypatch.setattr(
        generation.LoadedModel, "_run", lambda self, ids, *a: calls.append(len(ids)) or real(self, ids, *a)
    )
    generation._REPLIES.clear()  # memoised replies would skip the calls
    suite = no_ws / "mine.jsonl"
    suite.write_text(
        "".join(json.dumps({"id": f"m{i}", "prompt": f"Order JL-{i}?"}) + "\n" for i in range(4))
    )
    args = ["eval", "run", str(tiny["cand"]), "--suite", str(suite), "--baseline", str(tiny["base"])]
    args += ["--max-new-tokens", "3", "--kl-prompts", "3", "--out", str(no_ws / "r.json"), *flag]
    code, _, err = cli(args)
    assert code == 0, err
    assert calls == sizes


@pytest.mark.parametrize("flag, sizes", [([], [4, 4]), (["--batch-size", "3"], [3, 1, 3, 1])])
def test_eval_compare_generates_batch_size_replies_per_forward_pass(
    tiny, cli, no_ws, monkeypatch, flag, sizes
):
    """eval compare's --batch-size reaches both models' generate calls (no KL there)."""
    from rlhfops.evaluate import generation

    calls = []
    real = generation.LoadedModel._run
    monkeypatch.setattr(
        generation.LoadedModel, "_run", lambda self, ids, *a: calls.append(len(ids)) or real(self, ids, *a)
    )
    generation._REPLIES.clear()
    prompts = no_ws / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Order JL-{i} is late"}) + "\n" for i in range(4)))
    args = ["eval", "compare", str(tiny["cand"]), str(tiny["base"]), "--prompts", str(prompts)]
    args += ["--max-new-tokens", "3", "--out", str(no_ws / "c.json"), *flag]
    code, _, err = cli(args)
    assert code == 0, err
    assert calls == sizes


def test_eval_run_refuses_a_batch_of_zero_in_one_line(tiny, cli, no_ws):
    from rlhfops.errors import UserError
    from rlhfops.evaluate.run import EvalOptions, run_evaluation

    code, _, err = cli(["eval", "run", str(tiny["cand"]), "--suite", "harmful_requests", "--batch-size", "0"])
    assert code == 2 and "--batch-size" in err
    with pytest.raises(UserError, match="--batch-size 0"):
        run_evaluation(str(tiny["cand"]), EvalOptions("harmful_requests", batch_size=0), out=no_ws / "x.json")
    assert not (no_ws / "x.json").exists()


def test_redteam_with_baseline_records_before_and_after(tiny, cli, no_ws: Path):
    out_file = no_ws / "rt.json"
    args = [
        "eval",
        "run",
        str(tiny["cand"]),
        "--suite",
        "redteam",
        "--limit",
        "1",
        "--baseline",
        str(tiny["base"]),
    ]
    code, _, err = cli([*args, "--max-new-tokens", "4", "--kl-prompts", "0", "--out", str(out_file)])
    assert code == 0, err
    res = json.loads(out_file.read_text())
    rt = res["meta"]["redteam"]
    assert len(rt) == 6 and all(0.0 <= r["baseline_pass_rate"] <= 1.0 for r in rt.values())
    for cat, r in rt.items():
        rows = [i for i in res["items"] if i["category"] == cat]
        assert r["baseline_pass_rate"] == sum(i["baseline_passed"] for i in rows) / len(rows)
    assert res["meta"]["baseline_over_refusal_rate"] in (0.0, 1.0) and "kl" not in res["meta"]
    assert "win_rate" not in res["meta"]  # the gate's win rate comes from task prompts only


def test_kl_is_zero_to_itself_and_logprobs_match_generation(tiny):
    import torch

    from rlhfops.evaluate.generation import LoadedModel, mean_kl, sequence_logprobs

    m = LoadedModel.load(str(tiny["cand"]))
    assert mean_kl(m, m, ["hello", "where is my parcel"], max_new_tokens=6) == 0.0
    out = m._run(m.prompt_ids(["hi there", "refund?"]), 6, 1.0, 3)
    attn = torch.cat([out.prompt_mask.long(), out.response_mask.long()], dim=1)
    lp = sequence_logprobs(m.model, out.sequences, attn, out.prompt_length)
    mask = out.response_mask.bool()
    torch.testing.assert_close(lp[mask], out.logprobs[mask], rtol=1e-4, atol=1e-4)
    other = LoadedModel.load(str(tiny["base"]))
    assert mean_kl(m, other, ["hello", "where is my parcel"], max_new_tokens=6) > 0.0


def test_kl_runs_one_forward_pass_per_batch_and_the_lm_head_on_replies_only(tiny, monkeypatch):
    """mean_kl: the reference's forward only (the candidate's log-probs come from its sampler), and
    sequence_logprobs equals the log-softmax of the full logits at the reply positions."""
    import torch

    from rlhfops.evaluate import generation
    from rlhfops.evaluate.generation import LoadedModel, mean_kl, sequence_logprobs

    cand, ref = LoadedModel.load(str(tiny["cand"])), LoadedModel.load(str(tiny["base"]))
    out = cand._run(cand.prompt_ids(["hi there", "a longer prompt about my refund"]), 6, 1.0, 3)
    attn = torch.cat([out.prompt_mask.long(), out.response_mask.long()], dim=1)
    P = out.prompt_length
    with torch.no_grad():
        full = ref.model(
            input_ids=out.sequences, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0)
        )
    by_hand = torch.log_softmax(full.logits[:, P - 1 : -1].float(), -1).gather(-1, out.sequences[:, P:, None])
    torch.testing.assert_close(sequence_logprobs(ref.model, out.sequences, attn, P), by_hand.squeeze(-1))
    models = []
    real = generation.sequence_logprobs
    monkeypatch.setattr(generation, "sequence_logprobs", lambda m, *a: models.append(m) or real(m, *a))
    kl = mean_kl(cand, ref, ["hello", "where is my parcel", "refund?"], max_new_tokens=6, batch_size=2)
    assert kl > 0 and models == [ref.model, ref.model]  # two batches, the reference only
    assert mean_kl(cand, LoadedModel.load(str(tiny["cand"])), ["hello"], max_new_tokens=6) == 0.0


def test_in_a_workspace_the_evaluation_is_an_artifact_the_gate_reads(tiny, cli, tmp_path, monkeypatch):
    from rlhfops.gate.auth import enrol
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "quinn")
    root = tmp_path / "ws"
    w = init_workspace(root, "support-replies")
    w.add_person("bob", "business-owner", "bob")
    w.add_person("carol", "technical-lead", "bob")
    w.sign_spec("business-owner", enrol(w, "bob", "bob-password-1"))
    w.sign_spec("technical-lead", enrol(w, "carol", "carol-password-1"))
    cand_id = w.register_artifact("sft-model", tiny["cand"], [], "test", {})
    base_id = w.register_artifact("base-model", tiny["base"], [], "test", {})
    w.close()
    monkeypatch.chdir(root)
    code, _, err = cli(["eval", "run", str(tmp_path / "nope"), "--suite", "redteam"])
    assert code == 2 and "no such directory" not in err and "artifact" in err
    code, out, err = cli(
        [
            "eval",
            "run",
            cand_id[:10],
            "--suite",
            "redteam",
            "--limit",
            "1",
            "--max-new-tokens",
            "4",
            "--json",
        ]
    )
    assert code == 0, err
    summary = json.loads(out)
    code, out, err = cli(
        [
            "eval",
            "run",
            cand_id[:10],
            "--suite",
            "support-heldout",
            "--limit",
            "4",
            "--baseline",
            base_id[:10],
            "--max-new-tokens",
            "4",
            "--kl-prompts",
            "2",
        ]
    )
    assert code == 0, err
    assert "win rate" in out and "KL to reference" in out
    code, out, err = cli(
        ["eval", "compare", cand_id[:10], base_id[:10], "--prompts", str(tmp_path / "p.jsonl")]
    )
    assert code == 2 and "p.jsonl" in err
    (tmp_path / "p.jsonl").write_text('{"prompt": "My parcel is late"}\n{"prompt": "Refund please"}\n')
    code, out, err = cli(
        [
            "eval",
            "compare",
            cand_id[:10],
            base_id[:10],
            "--prompts",
            str(tmp_path / "p.jsonl"),
            "--max-new-tokens",
            "4",
        ]
    )
    assert code == 0, err
    assert "candidate:" in out and "baseline:" in out and "win rate" in out

    from rlhfops.gate.decide import gate_evaluate
    from rlhfops.redteam.suite import list_suites
    from rlhfops.workspace import Workspace

    with Workspace.open(root) as w:
        evals = w.artifacts("evaluation")
        assert [e.meta["kind"] for e in evals] == ["redteam", "success", "side_by_side"]
        rt, success, sbs = evals
        assert rt.id == summary["artifact"] and rt.parents == (cand_id,)
        assert success.parents == (cand_id, base_id) and sbs.parents == (cand_id, base_id)
        assert {c: r["total"] for c, r in rt.meta["redteam"].items()} == dict.fromkeys(list_suites(), 1)
        assert rt.meta["over_refusal_rate"] in (0.0, 1.0)
        sc = success.meta["success_criteria"]
        assert set(sc) == {
            "apologises and offers a remedy when the shop is at fault",
            "refuses a benign request",
        }
        assert all(r["baseline_rate"] is not None for r in sc.values())
        stored = json.loads(Path(success.path).read_text())
        assert len(stored["items"]) == 4 and all("baseline_response" in i for i in stored["items"])
        g = gate_evaluate(w, cand_id)
        assert g.evidence.kl == success.meta["kl"] and g.evidence.kl > 0
        assert g.evidence.redteam == rt.meta["redteam"] and g.evidence.alarms is not None
        assert g.evidence.win_rate is not None and g.evidence.win_rate["n"] == 2  # latest side_by_side


def test_eval_compare_with_a_left_biased_http_judge_ends_in_ties(tiny, cli, no_ws: Path):
    """An OpenAI-compatible judge (local stub) that always answers [[A]]: both orders cancel out."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[str] = []

    class Stub(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = body["messages"][0]["content"]
            calls.append(content)
            reply = "[[A]]" if "[Response A]" in content else "[[5]]"
            data = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prompts = no_ws / "p.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": f"Order JL-{i} is late"}) + "\n" for i in range(3)))
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        out_file = no_ws / "cmp.json"
        code, out, err = cli(
            ["eval", "compare", str(tiny["cand"]), str(tiny["base"]), "--prompts", str(prompts)]
            + ["--judge", f"openai:stub@{url}", "--max-new-tokens", "4", "--out", str(out_file)]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, err
    meta = json.loads(out_file.read_text())["meta"]
    wr = meta["win_rate"]
    assert (wr["wins"], wr["ties"], wr["losses"]) == (0, 3, 0) and wr["rate"] == 0.5
    assert wr["position_consistency"] == 0.0 and wr["first_position_share"] == 1.0
    assert wr["judge"] == f"openai:stub@{url}" and meta["kind"] == "side_by_side"
    assert len(calls) == 3 * 2 + 3 * 2  # 2 orders per pair + a pointwise score per reply
