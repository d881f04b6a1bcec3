"""Judge settings (the ``judge:`` section of ``rlhfops.yaml``) and :func:`make_judge`.

CLI spelling (``--judge``): ``rule``, ``policy`` (the spec's ``policy`` section, :mod:`.policy`),
``rm:PATH`` or ``reward-model:PATH`` (reward model directory),
``lm:PATH`` (causal LM directory), ``openai`` (url / model / api_key_env from the settings)
or ``openai:MODEL@URL``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlhfops.config import settings_section, validate_section
from rlhfops.errors import ConfigError, UserError
from rlhfops.judge.http import OpenAIJudge
from rlhfops.judge.local_lm import LocalLMJudge
from rlhfops.judge.policy import PolicyJudge
from rlhfops.judge.reward_model import RewardModelJudge
from rlhfops.judge.rule import RuleJudge


class JudgeSettings(BaseModel):
    """How to build a judge; the API key is read from the environment variable ``api_key_env``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rule", "policy", "reward-model", "openai", "local-lm"] = Field(
        "rule", description="rule | policy (the spec's policy facts) | reward-model | openai | local-lm."
    )
    path: str | None = Field(None, description="Model directory for reward-model and local-lm judges.")
    url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible API, e.g. http://host:8000/v1."
    )
    model: str | None = Field(None, description="Model name sent to the OpenAI-compatible endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    timeout: float = Field(60.0, gt=0, description="Seconds per request to the endpoint.")
    tie_margin: float = Field(0.0, ge=0, description="Score difference at or under which a pair is a tie.")


def settings_from_workspace(ws: Any) -> JudgeSettings:
    """The workspace's ``judge:`` settings (defaults when the section is absent)."""
    raw = settings_section(ws.settings, "judge")
    return validate_section(JudgeSettings, raw, "rlhfops.yaml", prefix="judge.")


def build_judge(s: JudgeSettings, policy: Any = None) -> Any:
    """The judge ``s`` describes; ``policy`` (the spec's ``policy`` section) for the policy judge."""
    if s.kind == "policy":
        if policy is None:
            raise ConfigError("judge kind 'policy' needs a spec with a policy: section (the facts to check)")

        return PolicyJudge(policy, tie_margin=s.tie_margin)
    if s.kind == "rule":
        return RuleJudge(tie_margin=s.tie_margin)
    if s.kind in ("reward-model", "local-lm") and not s.path:
        raise ConfigError(f"judge kind {s.kind!r} needs path: a model directory")
    if s.kind == "reward-model":
        return RewardModelJudge(str(s.path), tie_margin=s.tie_margin)
    if s.kind == "local-lm":
        return LocalLMJudge(str(s.path), tie_margin=s.tie_margin or 0.05)
    if not s.url or not s.model:
        raise ConfigError("judge kind 'openai' needs url and model (judge: section of rlhfops.yaml)")

    return OpenAIJudge(s.url, s.model, s.api_key_env, timeout=s.timeout)


def make_judge(spec: str = "rule", settings: JudgeSettings | None = None, policy: Any = None) -> Any:
    """A judge from its CLI spelling (module docstring); ``openai`` alone uses ``settings``; ``policy``
    is the spec's policy section (for ``policy``, or settings of kind policy)."""
    base = settings or JudgeSettings()
    if spec == "policy":
        return build_judge(base.model_copy(update={"kind": "policy"}), policy)
    if spec == "rule":
        return build_judge(base.model_copy(update={"kind": "rule"}))
    if spec.startswith(("rm:", "reward-model:")):
        path = spec.split(":", 1)[1]
        return build_judge(base.model_copy(update={"kind": "reward-model", "path": path}))
    if spec.startswith("lm:"):
        return build_judge(base.model_copy(update={"kind": "local-lm", "path": spec[3:]}))
    if spec == "openai":
        return build_judge(base.model_copy(update={"kind": "openai"}))
    if spec.startswith("openai:") and "@" in spec:
        model, url = spec[len("openai:") :].split("@", 1)
        return build_judge(base.model_copy(update={"kind": "openai", "model": model, "url": url}))
    if spec == "settings":
        return build_judge(base, policy)
    raise UserError(f"--judge {spec!r}: use rule, policy, rm:PATH, lm:PATH, openai or openai:MODEL@URL")
