"""models.reward_scoring: the one reward scoring that PPO, the reward-model judge and monitoring use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from reward_helpers import direct_reward, tiny_reward_model


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return tiny_reward_model(tmp_path_factory.mktemp("rs"), seed=5)


def test_judge_monitor_and_ppo_scorer_give_the_same_score(rm_dir):
    from rlhfops.judge.reward_model import RewardModelJudge
    from rlhfops.models.loading import load_tokenizer
    from rlhfops.models.reward_scoring import TextRewardScorer
    from rlhfops.monitor.rewards import reward_model_scorer
    from rlhfops.train.reward_sources import ModelReward, Responses

    prompts = ["Where is my order?", "Where is my order?", "Refund please"]
    replies = ["It ships today.", "Sorry, it is late.", "Done: refunded $20."]
    want = [direct_reward(rm_dir, p, r) for p, r in zip(prompts, replies, strict=True)]
    judge = RewardModelJudge(str(rm_dir)).scores(prompts, replies)
    monitor = reward_model_scorer(rm_dir, batch_size=2)(prompts, replies)
    pairs = TextRewardScorer(rm_dir).encode(prompts, replies)
    ppo = ModelReward(str(rm_dir), pad_id=load_tokenizer(str(rm_dir)).pad_token_id or 0).score(
        Responses([p for p, _ in pairs], [r for _, r in pairs], replies)
    )  # the first two rows share a prompt: PPO's shared-prefix path
    for got in (judge, monitor, [float(v) for v in ppo]):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert len({round(w, 6) for w in want}) == 3


def test_score_ids_empty_reply_reads_the_last_prompt_token(rm_dir):
    import torch

    from rlhfops.models.heads import RewardModel
    from rlhfops.models.reward_scoring import score_ids

    model = RewardModel.from_pretrained(rm_dir).eval()
    got = score_ids(model, [[5, 6, 7], [8]], [[], [9, 10]], pad_id=0)
    with torch.no_grad():
        a = float(model(torch.tensor([[5, 6, 7]]))[0, -1])
        b = float(model(torch.tensor([[8, 9, 10]]))[0, -1])
    assert got.tolist() == pytest.approx([(a - 0.5) / 2, (b - 0.5) / 2], rel=1e-4, abs=1e-5)


def test_no_other_module_normalises_reward_scores():
    import rlhfops

    src = Path(rlhfops.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.relative_to(src).as_posix() in ("models/reward_scoring.py", "models/heads.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "normalize"
                # text normalisation (unicodedata.normalize) is not score normalisation
                and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "unicodedata")
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert found == [], "score with rlhfops.models.reward_scoring.score_ids"


def test_score_ids_reads_the_models_pooling(rm_dir, tmp_path):
    """A model saved with ``pooling: mean`` scores the mean of the head's outputs over the reply's tokens
    (computed here from one plain forward), an empty reply the last prompt token; ``last`` differs."""
    import torch

    from rlhfops.models.heads import RewardModel
    from rlhfops.models.reward_scoring import score_ids

    model = RewardModel.from_pretrained(rm_dir).eval()
    model.pooling = "mean"
    mean_dir = model.save_pretrained(tmp_path / "mean")
    model = RewardModel.from_pretrained(mean_dir).eval()
    got = score_ids(model, [[5, 6, 7], [8], [4, 4]], [[], [9, 10, 11], [3]], pad_id=0)
    with torch.no_grad():
        a = float(model(torch.tensor([[5, 6, 7]]))[0, -1])
        b = float(model(torch.tensor([[8, 9, 10, 11]]))[0, 1:].mean())
        c = float(model(torch.tensor([[4, 4, 3]]))[0, -1])
    assert got.tolist() == pytest.approx([(a - 0.5) / 2, (b - 0.5) / 2, (c - 0.5) / 2], rel=1e-4, abs=1e-5)
    last = score_ids(RewardModel.from_pretrained(rm_dir).eval(), [[8]], [[9, 10, 11]], pad_id=0)
    assert abs(float(last[0]) - got.tolist()[1]) > 1e-4
