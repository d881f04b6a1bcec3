"""Web app settings: the ``web:`` section of ``rlhfops.yaml`` (all optional).

```yaml
web:
  max_body_bytes: 10485760     # larger request bodies get 413
  trusted_proxies: [10.0.0.5]  # X-Forwarded-For is read only from these (addresses or CIDR networks)
```
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlhfops.config import settings_section, validate_section

DEFAULT_MAX_BODY = 10 * 1024 * 1024


class WebSettings(BaseModel):
    """Request size limit and the reverse proxies whose ``X-Forwarded-For`` is believed."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY,
        ge=1024,
        le=2**31,
        description="Largest request body in bytes (default 10 MiB); a larger one is refused with 413 "
        "before it is read. Production logs larger than this go through `rlhfops monitor ingest`.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of reverse proxies in front of the app. Only a request "
        "from one of them has its X-Forwarded-For read (for the sign-in throttle); default none.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        from rlhfops.web.sessions import parse_proxies

        parse_proxies(v)
        return v


def web_settings(ws: Any) -> WebSettings:
    """The workspace's ``web:`` settings (defaults when the section is absent)."""
    return validate_section(WebSettings, settings_section(ws.settings, "web"), "rlhfops.yaml", prefix="web.")
