"""A frozen model keeps its oneDNN-reordered weights between generate calls (``keep_packed``): the same
replies and log-probs as with fresh copies, for other batch sizes, and a changed weight is reordered again."""

from __future__ import annotations

import pytest
import torch

from rlhfops.models import generate as gen_mod
from rlhfops.models.generate import generate
from rlhfops.models.loading import load_causal_lm, load_tokenizer
from rlhfops.models.tiny import make_tiny_model_dir

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN")

PROMPTS = [[1, 60, 61, 62, 63, 64, 65, 66], [1, 70, 71], [1, 80, 81, 82, 83]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny", seed=5)
    return str(path), load_tokenizer(str(path), padding_side="left")


def _gen(model, tok, prompts, keep, temperature=1.0, seed=0):
    return generate(
        model,
        prompts,
        max_new_tokens=10,
        temperature=temperature,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(seed),
        keep_packed=keep,
    )


def _same(a, b):
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.logprobs, b.logprobs)


def test_kept_packs_give_the_same_replies_and_are_remade_when_a_weight_changes(tiny, monkeypatch):
    path, tok = tiny
    model = load_causal_lm(path, trainable=False).eval()
    fresh = [_gen(model, tok, p, keep=False, temperature=t) for p, t in ((PROMPTS, 1.0), (PROMPTS[:2], 0.0))]
    assert model not in gen_mod._KEPT_PACKS
    reorders = []
    real = gen_mod._reorder
    monkeypatch.setattr(gen_mod, "_reorder", lambda w, rows: reorders.append(rows) or real(w, rows))
    _same(_gen(model, tok, PROMPTS, keep=True), fresh[0])
    n = len(reorders)
    assert n > 0 and model in gen_mod._KEPT_PACKS
    # another batch size, greedy: no new reorder, the same replies as fresh copies
    _same(_gen(model, tok, PROMPTS[:2], keep=True, temperature=0.0), fresh[1])
    _same(_gen(model, tok, PROMPTS, keep=True), fresh[0])
    assert len(reorders) == n
    # a weight changed in place: that weight alone is reordered again, and the replies follow the change
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    changed = _gen(model, tok, PROMPTS, keep=True)
    assert len(reorders) == n + 1
    monkeypatch.undo()
    _same(changed, _gen(model, tok, PROMPTS, keep=False))
    assert not torch.equal(changed.logprobs, fresh[0].logprobs)


def test_a_model_in_training_keeps_nothing(tiny):
    path, tok = tiny
    model = load_causal_lm(path).eval()  # trainable: its weights change between calls
    _gen(model, tok, PROMPTS, keep=True)
    assert model not in gen_mod._KEPT_PACKS
