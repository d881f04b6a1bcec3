"""Read-only monitoring page for the web app: open triggers and the latest drift report.

``router`` is a FastAPI ``APIRouter``; :func:`rlhfops.web.app.create_app` mounts it behind the login
(readers: :data:`rlhfops.web.auth.MONITOR_READERS`, others get 403). ``GET /monitor``
shows the open triggers (the play to re-enter, rule, evidence, when) and a summary of the latest drift
report (input drift per window, new clusters with examples, output metrics, business metrics vs the
baseline). Nothing here writes: triggers are closed with ``rlhfops triggers close ID``. The page extends
the app's ``base.html``; every value is autoescaped (prompts are production text).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from rlhfops.web.auth import optional_user
from rlhfops.web.deps import get_workspace, monitor_reader

router = APIRouter(tags=["monitor"])

PAGE = """{% extends "base.html" %}
{% block content %}
<div class="scroll-x">
<h1>Monitoring</h1>
<h2>Open triggers</h2>
{% if triggers %}
<table>
<thead><tr><th>#</th><th>re-enter</th><th>rule</th><th>evidence</th><th>opened</th></tr></thead>
<tbody>
{% for t in triggers %}
<tr><td>{{ t.id }}</td><td>Play {{ t.play }} ({{ t.play_name }})</td><td>{{ t.rule }}</td>
<td>{{ t.evidence }}</td><td>{{ t.opened_at[:16] }}</td></tr>
{% endfor %}
</tbody>
</table>
<p>Close one with <code>rlhfops triggers close ID</code> once the play is re-entered.</p>
{% else %}
<p>No open triggers.</p>
{% endif %}
<h2>Latest drift report</h2>
{% if report %}
<p>Report {{ report_id[:12] }} ({{ report.created_at[:16] }}), {{ report.training_note }};
{{ report.production.rows_tested }} production rows tested.</p>
<p><strong>Input:</strong> {{ report.input.latest.evidence }}</p>
{% for c in report.input.latest.new_clusters %}
<p>New cluster: {{ c.size }} rows ({{ c.share|pct }})</p>
<ul>{% for e in c.examples %}<li>{{ e.prompt }}</li>{% endfor %}</ul>
{% endfor %}
{% if report.output.metrics %}
<table>
<thead><tr><th>output metric</th><th>reference</th><th>production</th><th>test</th><th>p (Holm)</th>
<th></th></tr></thead>
<tbody>
{% for m in report.output.metrics %}
<tr><td>{{ m.name }}</td><td>{{ m.reference_value|num }}</td><td>{{ m.production_value|num }}</td>
<td>{{ m.test }}</td><td>{{ m.p_adjusted|num(4) }}</td><td>{{ "drifted" if m.drifted else "ok" }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endif %}
{% if report.output.skipped %}<p>{{ report.output.skipped }}</p>{% endif %}
<table>
<thead><tr><th>business metric</th><th>baseline</th><th>now</th><th>95% CI</th><th>n</th><th></th>
</tr></thead>
<tbody>
{% for b in report.business %}
<tr><td>{{ b.name }}</td><td>{{ b.baseline|num }}</td><td>{{ b.current|num }}</td>
<td>{{ b.ci_low|num }} .. {{ b.ci_high|num }}</td><td>{{ b.n }}</td>
<td>{{ {True: "better", False: "worse"}.get(b.better, "not distinguishable") }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No drift report yet: <code>rlhfops monitor ingest FILE</code>, then <code>rlhfops monitor drift</code>.</p>
{% endif %}
</div>
{% endblock %}
"""


@router.get("/monitor", response_class=HTMLResponse, dependencies=[Depends(monitor_reader)])
def monitor_page(request: Request, ws: Any = Depends(get_workspace)) -> HTMLResponse:
    """Open triggers and the latest drift report."""
    from rlhfops.monitor.engine import latest_drift_report, open_triggers
    from rlhfops.web.render import csrf_token

    art = latest_drift_report(ws)
    report = json.loads(art.path.read_text(encoding="utf-8")) if art is not None else None
    # the app's environment (autoescape on, base.html, filters); the page itself is this module's string
    template = request.app.state.templates.from_string(PAGE)
    html = template.render(
        user=optional_user(request),
        csrf=csrf_token(request),
        project=ws.settings.name,
        title="Monitoring",
        triggers=open_triggers(ws),
        report=report,
        report_id=art.id if art is not None else "",
    )
    return HTMLResponse(html)
