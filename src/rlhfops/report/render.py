"""Render a :class:`~rlhfops.report.data.ReportData` to one self-contained HTML file.

Jinja2 with autoescaping: every value from evaluations, specs and people is escaped. Plots (SVG made by
:mod:`rlhfops.report.plots`) are embedded as ``data:image/svg+xml;base64`` images, so the page has no
inline markup from data and works under a Content-Security-Policy that allows ``img-src data:`` and
no inline styles (the web app's): pass ``css_href`` to link the stylesheet instead of inlining it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.data.files import atomic_write_text
from rlhfops.report import plots
from rlhfops.report.data import ReportData, gate_report_data

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace

TEMPLATE = "gate_report.html"


def fmt(x: Any) -> str:
    """Numbers to 3 decimals (ints as they are); None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


CSS_FILE = Path(__file__).parent / "templates" / "report.css"


def svg_data_uri(svg: str) -> str:
    """``data:image/svg+xml;base64,...`` for an SVG string ("" stays "")."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii") if svg else ""


def render_plots(data: ReportData) -> dict[str, str]:
    """Plot name -> data URI ("" when there is nothing to plot)."""
    svgs = {
        "success": plots.success_plot(data.success),
        "redteam": plots.redteam_plot(data.redteam),
        "winrate": plots.win_rate_plot(data.win_rates, data.min_win_rate),
        "curves": plots.curves_plot(data.curves, data.reward_key),
        "frontier": plots.kl_frontier_plot(data.frontier, data.frontier_kind),
    }
    return {k: svg_data_uri(v) for k, v in svgs.items()}


def render_html(data: ReportData, css_href: str = "") -> str:
    """The report as an HTML string; the stylesheet is inlined unless ``css_href`` is given."""
    return _env().get_template(TEMPLATE).render(d=data, plots=render_plots(data), fmt=fmt, css_href=css_href)


def write_html(data: ReportData, out: Path) -> Path:
    """Write the report atomically (temp file + rename)."""
    out = Path(out)
    return atomic_write_text(out, render_html(data))


def gate_report(
    ws: Workspace, model_ref: str, out: Path | None = None, register: bool = True
) -> tuple[Path, str]:
    """Write the gate report of a model; with ``register`` also store it as a ``report`` artifact
    (parents: the model and its decisions). Returns (path written, artifact id or "")."""
    from rlhfops.workspace.identity import acting_person

    data = gate_report_data(ws, model_ref)
    mid = data.model["id"]
    if out is None:
        out = ws.root / "reports" / f"gate-{mid[:12]}.html"
    path = write_html(data, out)
    aid = ""
    if register:
        parents = [mid] + [e["hash"] for e in data.decisions]
        aid = ws.register_artifact(
            "report",
            path,
            parents,
            acting_person(),
            {"report": "gate", "model": mid, "verdict": data.verdict},
        )
    return path, aid
