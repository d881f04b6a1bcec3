"""The checkpoint manifest on its own (no model): each kind of damage is named, an intact one passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhfops.train.checkpoint_manifest import file_digest, verify_checkpoint, write_manifest


@pytest.fixture
def ckpt(tmp_path) -> Path:
    d = tmp_path / "step-000004"
    d.mkdir()
    (d / "trainable.safetensors").write_bytes(bytes(range(256)) * 8)
    (d / "state.pt").write_bytes(b"state" * 100)
    state = {"step": 4, "stage": "sft", "manifest": "manifest.json"}
    (d / "trainer_state.json").write_text(json.dumps(state))
    write_manifest(d, 4, "sft")
    return d


def test_intact_checkpoint_passes(ckpt):
    verdict = verify_checkpoint(ckpt, 4)
    assert verdict.intact and verdict.verified


def test_same_size_change_names_both_hashes(ckpt):
    path = ckpt / "state.pt"
    want = file_digest(path).sha256
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    got = file_digest(path).sha256
    problem = verify_checkpoint(ckpt, 4).problem
    assert problem == f"state.pt sha256 is {got[:16]}..., expected {want[:16]}... (same size)"


def test_size_change_named(ckpt):
    (ckpt / "state.pt").write_bytes(b"state" * 99)
    assert "state.pt has 495 bytes, expected 500" in verify_checkpoint(ckpt, 4).problem


def test_added_byte_named(ckpt):
    with open(ckpt / "trainable.safetensors", "ab") as fh:
        fh.write(b"\0")
    assert "trainable.safetensors has 2049 bytes, expected 2048" in verify_checkpoint(ckpt, 4).problem


def test_manifest_for_another_step(ckpt):
    assert verify_checkpoint(ckpt, 6).problem == "manifest.json is for step 4, not 6"


def test_manifest_missing_but_announced(ckpt):
    (ckpt / "manifest.json").unlink()
    verdict = verify_checkpoint(ckpt, 4)
    assert not verdict.intact and "manifest.json is missing" in verdict.problem


def test_manifest_missing_on_a_legacy_checkpoint_is_unverified_not_damaged(ckpt):
    (ckpt / "manifest.json").unlink()
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 4, "stage": "sft"}))
    verdict = verify_checkpoint(ckpt, 4)
    assert verdict.intact and not verdict.verified


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda m: "{not json", "manifest.json is unreadable"),
        (lambda m: json.dumps({**m, "format": "other/9"}), "unknown format"),
        (lambda m: json.dumps({**m, "files": {"../state.pt": {"sha256": "0", "bytes": 1}}}), "plain file"),
        (
            lambda m: json.dumps({**m, "files": {k: v for k, v in m["files"].items() if k != "state.pt"}}),
            "does not list state.pt",
        ),
    ],
)
def test_bad_manifest_named(ckpt, edit, expected):
    path = ckpt / "manifest.json"
    path.write_text(edit(json.loads(path.read_text())))
    assert expected in verify_checkpoint(ckpt, 4).problem
