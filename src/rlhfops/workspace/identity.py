"""Who is acting, and the roles a person can hold in a workspace."""

from __future__ import annotations

import getpass
import os

from rlhfops.errors import UserError

# role -> what the person does (the owner roles of the five plays are named in PLAY_OWNER_ROLE)
ROLES: dict[str, str] = {
    "task-spec-owner": "owns Play 1: writes and maintains the task spec and the business baseline",
    "business-owner": "signs the spec for the business",
    "technical-lead": "signs the spec for engineering",
    "domain-expert-lead": "owns Play 2: demonstrations and the SFT model",
    "annotation-lead": "owns Play 3: preference annotation, agreement and the reward model",
    "rater": "labels preference pairs",
    "ml-engineer": "owns Play 4: RL fine-tuning (PPO / DPO) and checkpoint evaluations",
    "red-team-lead": "runs the red-team suites of Play 5",
    "gate-owner": "owns Play 5: signs the deployment gate",
}


def check_role(role: str) -> str:
    """The role, normalised (``business_owner`` -> ``business-owner``); unknown roles are refused."""
    norm = role.strip().lower().replace("_", "-").replace(" ", "-")
    if norm.endswith("s") and norm[:-1] in ROLES:  # "raters"
        norm = norm[:-1]
    if norm not in ROLES:
        raise UserError(f"role {role!r} unknown; valid: {', '.join(ROLES)}")
    return norm


def acting_person(as_: str | None = None) -> str:
    """The acting person: ``--as NAME``, else $RLHFOPS_USER, else the OS user."""
    for candidate in (as_, os.environ.get("RLHFOPS_USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except Exception:  # no user name available (some containers)
        return "unknown"
