"""Role grants need a credential once the workspace has an account (docs/security.md, "Role grants"):
`people add` and `raters add` through the CLI, on both sides of each rule, and nothing written on refusal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from gate_helpers import PEOPLE
from shared_helpers import make_workspace, password_of

from rlhfops.annotate.accounts import account, create_token, set_account
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db


@pytest.fixture
def bare(tmp_path: Path, monkeypatch):
    """The play owners (alice task-spec-owner, erin annotation-lead, frank ml-engineer, ...), no account."""
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_TOKEN", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "mallory")
    w = make_workspace(tmp_path / "ws", PEOPLE)
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(w.root))
    yield w
    w.close()


@pytest.fixture
def accounts_ws(bare):
    """The same with accounts for alice, erin, frank (none admin) and the admin ``ada``."""
    for name in ("alice", "erin", "frank"):
        set_account(bare, name, password_of(name))
    set_account(bare, "ada", password_of("ada"), is_admin=True)
    return bare


def _state(w) -> tuple:
    """Every person row (with added_by) and every account: what a refused grant must leave alone."""
    with w.session() as s:
        people = sorted(s.execute(sa.select(db.Person.name, db.Person.role, db.Person.added_by)).all())
        accs = sorted(s.execute(sa.select(m.Account.name, m.Account.password_hash, m.Account.is_admin)).all())
    return tuple(people), tuple(accs)


def _added_by(w, name: str, role: str) -> str | None:
    with w.session() as s:
        return s.scalar(sa.select(db.Person.added_by).where(db.Person.name == name, db.Person.role == role))


def _stdin(monkeypatch, *lines: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))


def _refused(cli, args: list[str], w, needle: str) -> None:
    before = _state(w)
    code, _, err = cli(args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert _state(w) == before


def test_without_any_account_grants_work_as_before(bare, cli, monkeypatch):
    code, out, err = cli(["people", "add", "mallory", "--role", "gate-owner"])
    assert code == 0 and out == "mallory: gate-owner\n", err
    assert _added_by(bare, "mallory", "gate-owner") == "mallory"
    _stdin(monkeypatch, "first-admin-pw")
    code, out, err = cli(["raters", "add", "alice", "--admin", "--password-stdin", "--as", "alice"])
    assert code == 0 and out == "account alice created\n", err
    assert account(bare, "alice").is_admin


def test_people_add_needs_an_allowed_credential(accounts_ws, cli, monkeypatch):
    w = accounts_ws
    gate_owner = ["people", "add", "mallory", "--role", "gate-owner"]
    _refused(cli, [*gate_owner, "--as", "alice"], w, "needs a credential")
    _stdin(monkeypatch, "not-alices-password")
    _refused(cli, [*gate_owner, "--as", "alice", "--password-stdin"], w, "wrong password")
    _stdin(monkeypatch, password_of("frank"))  # ml-engineer: a good credential, no right to grant
    _refused(cli, [*gate_owner, "--as", "frank", "--password-stdin"], w, "'frank' may not grant gate-owner")
    _stdin(monkeypatch, password_of("erin"))  # the lead: raters only
    _refused(
        cli, [*gate_owner, "--as", "erin", "--password-stdin"], w, "annotation-lead may grant rater only"
    )
    _stdin(monkeypatch, password_of("erin"))
    code, out, err = cli(["people", "add", "rita", "--role", "rater", "--as", "erin", "--password-stdin"])
    assert code == 0 and out == "rita: rater\n" and _added_by(w, "rita", "rater") == "erin", err
    _stdin(monkeypatch, password_of("alice"))  # task-spec-owner: every role
    code, out, err = cli([*gate_owner, "--as", "alice", "--password-stdin"])
    assert code == 0 and _added_by(w, "mallory", "gate-owner") == "alice", err


def test_the_grant_records_the_authenticated_granter(accounts_ws, cli, monkeypatch):
    """The admin's token grants, and the row names ada (not the acting OS user); a claimed name that
    is not the token's owner is refused."""
    monkeypatch.setenv("RLHFOPS_TOKEN", create_token(accounts_ws, "ada"))
    _refused(cli, ["people", "add", "mallory", "--role", "red-team-lead"], accounts_ws, "belongs to 'ada'")
    monkeypatch.delenv("RLHFOPS_USER")
    code, _, err = cli(["people", "add", "mallory", "--role", "red-team-lead"])
    assert code == 0 and _added_by(accounts_ws, "mallory", "red-team-lead") == "ada", err
    monkeypatch.delenv("RLHFOPS_TOKEN")
    _stdin(monkeypatch, create_token(accounts_ws, "frank"))
    _refused(cli, ["people", "add", "frank", "--role", "gate-owner", "--token-stdin"], accounts_ws, "may not")


def test_raters_add_needs_an_allowed_credential(accounts_ws, cli, monkeypatch):
    w = accounts_ws
    new_rater = ["raters", "add", "rita", "--role", "rater", "--password-stdin"]
    _stdin(monkeypatch, "rita-password")
    _refused(cli, new_rater, w, "wrong password for 'mallory'")  # no account: nothing created
    _stdin(monkeypatch, "wrong-erin-pw", "rita-password")
    _refused(cli, [*new_rater, "--as", "erin"], w, "wrong password")
    _stdin(monkeypatch, password_of("frank"), "rita-password")
    _refused(cli, [*new_rater, "--as", "frank"], w, "'frank' may not grant rater")
    # gina holds gate-owner: whoever sets her new account's password could sign as the gate owner
    _stdin(monkeypatch, password_of("erin"), "erin-chose-this")
    _refused(
        cli, ["raters", "add", "gina", "--password-stdin", "--as", "erin"], w, "may not grant gate-owner"
    )
    # a role the account lacks, even on one's own account with its current password
    _stdin(monkeypatch, password_of("erin"), password_of("erin"), "erin-new-pw")
    _refused(
        cli,
        ["raters", "add", "erin", "--role", "gate-owner", "--password-stdin", "--as", "erin"],
        w,
        "may not",
    )
    # admin: only an admin makes admins (not task-spec-owner, not oneself)
    _stdin(monkeypatch, password_of("alice"), password_of("frank"), "frank-new-pw")
    _refused(
        cli, ["raters", "add", "frank", "--admin", "--password-stdin", "--as", "alice"], w, "only an admin"
    )
    _stdin(monkeypatch, password_of("erin"), "rita-password")
    code, out, err = cli([*new_rater, "--as", "erin"])
    assert code == 0 and out == "account rita created\n" and _added_by(w, "rita", "rater") == "erin", err
    _stdin(monkeypatch, "gina-password")  # the admin's token: any role, any account
    monkeypatch.setenv("RLHFOPS_TOKEN", create_token(w, "ada"))
    code, out, err = cli(["raters", "add", "gina", "--role", "gate-owner", "--password-stdin", "--as", "ada"])
    assert code == 0 and out == "account gina created\n", err
    _stdin(monkeypatch, password_of("frank"), "frank-new-pw")
    code, _, err = cli(
        ["raters", "add", "frank", "--admin", "--password-stdin", "--role", "ml-engineer", "--as", "ada"]
    )
    assert code == 0 and account(w, "frank").is_admin, err


def test_a_password_change_alone_grants_nothing(accounts_ws, cli, monkeypatch):
    """No new role, no new account, no admin: the current password is enough, as before."""
    _stdin(monkeypatch, password_of("frank"), "frank-new-pw")
    code, out, err = cli(["raters", "add", "frank", "--role", "ml-engineer", "--password-stdin"])
    assert code == 0 and out == "account frank updated\n", err
