"""Reward-model scores for output drift: the tiny random reward model, batch-invariant, equal to a direct
forward pass on the chat-templated conversation; `monitor drift --reward-model` adds reward_score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reward_helpers import direct_reward, tiny_reward_model


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return tiny_reward_model(tmp_path_factory.mktemp("rm"), seed=3)


def test_scores_match_a_direct_forward_and_do_not_depend_on_batching(rm_dir):
    from rlhfops.monitor.rewards import reward_model_scorer

    prompts = ["Where is my order?", "Refund please", "hi"]
    responses = ["It ships today.", "Done: refunded $20, you will see it in 3 days.", ""]
    one = reward_model_scorer(rm_dir, batch_size=1)(prompts, responses)
    many = reward_model_scorer(rm_dir, batch_size=16)(prompts, responses)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)
    for p, r, s in zip(prompts, responses, one, strict=True):
        assert s == pytest.approx(direct_reward(rm_dir, p, r), rel=1e-4, abs=1e-5)
    assert len(set(np.round(one, 6))) == 3


def test_cli_drift_with_reward_model_adds_reward_score(ws, tmp_path, rm_dir, capsys, monkeypatch):
    from monitor_drift_texts import support_prompts
    from monitor_fake_embed import use_fake_embedder

    from rlhfops.cli.main import main
    from rlhfops.monitor.rewards import reward_model_scorer

    use_fake_embedder(monkeypatch)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in support_prompts(100, 1)))
    ref = tmp_path / "ref.jsonl"
    ref_rows = [{"prompt": "Where is my order?", "response": "Ships today." * (1 + i % 3)} for i in range(40)]
    ref.write_text("".join(json.dumps(r) + "\n" for r in ref_rows))
    prod = tmp_path / "prod.jsonl"
    prompts = support_prompts(40, 2)
    prod.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p,
                    "response": "We are sorry.",
                    "model_id": "m",
                    "time": f"2025-03-01T00:{i:02d}:00Z",
                }
            )
            + "\n"
            for i, p in enumerate(prompts)
        )
    )
    main(["monitor", "ingest", str(prod)])
    capsys.readouterr()
    argv = ["monitor", "drift", "--window", "40", "--reference", str(ref), "--reward-model", str(rm_dir)]
    main([*argv, "--train-prompts", str(train), "--json", "--no-triggers"])
    report = json.loads(capsys.readouterr().out)["report"]
    metrics = {m["name"]: m for m in report["output"]["metrics"]}
    assert set(metrics) == {"response_length", "refusal", "reward_score"}
    scorer = reward_model_scorer(rm_dir)
    want_ref = np.mean(scorer([r["prompt"] for r in ref_rows], [r["response"] for r in ref_rows]))
    want_prod = np.mean(scorer(prompts, ["We are sorry."] * 40))
    assert metrics["reward_score"]["reference_value"] == pytest.approx(want_ref, rel=1e-4)
    assert metrics["reward_score"]["production_value"] == pytest.approx(want_prod, rel=1e-4)
    assert metrics["reward_score"]["test"] == "ks_2samp"
    assert report["output"]["skipped"] is None
    assert report["training_note"] == f"file {train}" and report["training"]["sources"] == []
