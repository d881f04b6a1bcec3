"""The JSON API fuzzed from its own OpenAPI schema (schemathesis): no request makes it answer 5xx.

The caller holds every role (rater, annotation lead, domain-expert lead, admin) so the fuzzing reaches
past the access checks; a bounded number of examples per operation keeps the run short."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from web_helpers import pairs  # noqa: E402

from rlhfops.annotate.queue import queue_pairs  # noqa: E402

MAX_EXAMPLES = 30  # per operation


def test_api_has_no_server_errors(sqlite_ws) -> None:
    from hypothesis import given

    from rlhfops.annotate.accounts import create_token, set_account
    from rlhfops.annotate.demos import queue_prompts
    from rlhfops.web.app import create_app

    for role in ("rater", "annotation-lead", "domain-expert-lead"):
        sqlite_ws.add_person("boss", role, "alice")
    set_account(sqlite_ws, "boss", "a long password", is_admin=True)
    headers = {"Authorization": f"Bearer {create_token(sqlite_ws, 'boss')}"}
    queue_pairs(sqlite_ws, pairs(8), "b1", 2)
    queue_prompts(sqlite_ws, ["write a reply"], "d1")
    # the schema is for signed-in admins only (boss is one)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(sqlite_ws.root), headers=headers)
    seen = []
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def run(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
    assert len(seen) >= 15 and "POST /api/labels" in seen
