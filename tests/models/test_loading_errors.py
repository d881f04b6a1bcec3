"""Model loading: clear one-line errors, tokenizer pad != eos, atomic saves, reward-model round trip."""

from __future__ import annotations

import pytest
import torch

from rlhfops.errors import UserError
from rlhfops.models.heads import RewardModel
from rlhfops.models.loading import load_causal_lm, load_tokenizer, resolve_model_dir, save_model
from rlhfops.models.tiny import make_tiny_model_dir, tiny_tokenizer


def test_unknown_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="neither 'smollm2-135m-instruct' nor a local model directory"):
        resolve_model_dir("some-org/some-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model directory"):
        resolve_model_dir(str(tmp_path / "empty"))


def test_tiny_tokenizer_chat_template_and_pad():
    tok = tiny_tokenizer()
    assert tok.pad_token_id != tok.eos_token_id
    text = tok.apply_chat_template(
        [{"role": "user", "content": "héllo"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_save_is_atomic_on_failure(tmp_path):
    model_dir = make_tiny_model_dir(tmp_path / "tiny")
    model = load_causal_lm(str(model_dir))
    out = tmp_path / "out"

    class Boom:
        def save_pretrained(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(model, Boom(), out)
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
    save_model(model, load_tokenizer(str(model_dir)), out)
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()


def test_reward_model_round_trip(tmp_path):
    model_dir = make_tiny_model_dir(tmp_path / "tiny")
    rm = RewardModel.from_causal_lm(str(model_dir))
    rm.set_normalization(2.0, 4.0)
    rm.save_pretrained(tmp_path / "rm")
    back = RewardModel.from_pretrained(tmp_path / "rm")
    ids = torch.tensor([[1, 50, 60, 70]])
    torch.testing.assert_close(back(ids), rm(ids), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(back.normalize(torch.tensor([6.0])), torch.tensor([1.0]))
    with pytest.raises(UserError, match="not a reward/value model directory"):
        RewardModel.from_pretrained(model_dir)
