"""Fixtures for the gate tests: ``gws`` (defined in tests/helpers/gate_fixtures.py) and ``cheap_kdf``."""

import pytest
from gate_fixtures import gws  # noqa: F401


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at n=2**4 instead of 2**14 for the account passwords and the signing keys' wrapping.

    For tests about the gate's decisions, not about the KDF: every password check and key unlock still
    runs scrypt (a wrong password or an altered key still fails), ~1000x cheaper: test_gate_decide.py
    alone made 215 scrypt calls of ~60 ms each (13 of its ~40 CPU s). Used by the files mapped to
    gate/decide.py in tools/mutation.py, where each mutant reruns them.
    """
    from rlhfops.annotate import accounts
    from rlhfops.workspace import signing

    monkeypatch.setattr(signing, "KDF_N", 2**4)
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**4)


@pytest.fixture
def c_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """``yaml.safe_load`` through libyaml's CSafeLoader (the same documents, parsed in C).

    The spec is checked from its YAML text on every ``current_spec()``: test_gate_decide.py parsed it 195
    times in pure Python (~5 of its ~20 CPU s). Not for tests of YAML error messages (the C parser's
    marks can differ); the gate files mapped to gate/decide.py have none.
    """
    import yaml

    monkeypatch.setattr(yaml, "safe_load", lambda stream: yaml.load(stream, Loader=yaml.CSafeLoader))
