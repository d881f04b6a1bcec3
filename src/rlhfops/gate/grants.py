"""Who may grant a role, create an account or make an account admin (docs/security.md, "Role grants").

The rule, enforced by the CLI (`rlhfops people add`, `rlhfops raters add`):

- While the workspace has no account, grants need no credential: the first person sets it up.
- Once any account exists, a grant needs the granter's credential (checked with
  :func:`rlhfops.gate.auth.authenticate`), and the granter must be allowed the grant:

  * an admin account may grant every role and make an account admin;
  * a holder of ``task-spec-owner`` may grant every role (not admin);
  * a holder of ``annotation-lead`` may grant ``rater`` only (a lead adds raters daily);
  * nobody else may grant anything.

Creating an account counts as granting every role its person holds: whoever sets the password of a
gate owner's new account could sign as the gate owner. The Python API
(:meth:`rlhfops.workspace.core.Workspace.add_person`) is below this rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from rlhfops.annotate import accounts
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace

GRANTS_EVERY_ROLE = "task-spec-owner"
LEAD_ROLE = "annotation-lead"
LEAD_MAY_GRANT = frozenset({"rater"})


class GrantError(UserError):
    """The granter may not make this grant."""


def grants_need_credential(ws: Workspace) -> bool:
    """True once the workspace has any account (before that, the first person sets it up)."""
    with ws.session() as s:
        return s.scalar(sa.select(m.Account.id).limit(1)) is not None


def check_grant(ws: Workspace, granter: str, roles: Iterable[str], admin: bool, action: str) -> None:
    """Refuse (:class:`GrantError`, one line) unless the authenticated ``granter`` may grant ``roles``
    (and make an account admin when ``admin``)."""
    wanted = sorted(set(roles))
    acc = accounts.account(ws, granter)
    if acc is not None and acc.is_admin:
        return
    what = ", ".join(wanted) + (" and admin" if admin else "") if wanted else "admin"
    if admin:
        raise GrantError(
            f"{action}: only an admin account may make an account admin; {granter!r} is not an admin; "
            "nothing written"
        )
    if ws.has_role(granter, GRANTS_EVERY_ROLE):
        return
    if ws.has_role(granter, LEAD_ROLE) and set(wanted) <= LEAD_MAY_GRANT:
        return
    lead = f" ({LEAD_ROLE} may grant {', '.join(sorted(LEAD_MAY_GRANT))} only)"
    raise GrantError(
        f"{action}: {granter!r} may not grant {what}: it needs an admin account or the role "
        f"{GRANTS_EVERY_ROLE}{lead if ws.has_role(granter, LEAD_ROLE) else ''}; nothing written"
    )
