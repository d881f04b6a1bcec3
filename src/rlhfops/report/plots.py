"""Report plots: matplotlib (Agg, no pyplot state) rendered to SVG documents.

Text is written as SVG ``<text>`` (``svg.fonttype: none``), which matplotlib XML-escapes; the report
embeds each SVG as a base64 ``data:`` image, so labels from evaluation data never become page markup.
Each function returns "" when there is nothing to plot.
"""

from __future__ import annotations

import io
from typing import Any

from rlhfops.measures.kl_reading import curve_note

_GREEN, _RED, _GREY, _BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rlhfops"}):
        fig.savefig(buf, format="svg")
    return buf.getvalue()


def _short(label: str, n: int = 40) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def success_plot(rows: list[dict[str, Any]]) -> str:
    """Before (baseline) vs after (candidate) rate per success criterion, with the spec's target."""
    rows = [r for r in rows if r.get("rate") is not None]
    if not rows:
        return ""
    fig = _figure(7.5, 0.8 + 0.7 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    # no baseline measured: no bar (NaN), rather than a bar at 0 that reads as "never before"
    before = [float("nan") if r.get("baseline_rate") is None else r["baseline_rate"] for r in rows]
    after = [r["rate"] for r in rows]
    ax.barh([y + 0.18 for y in ys], before, height=0.35, color=_GREY, label="before (baseline)")
    colours = [_GREEN if r.get("status") == "pass" else _RED for r in rows]
    ax.barh([y - 0.18 for y in ys], after, height=0.35, color=colours, label="after (candidate)")
    for y, r in zip(ys, rows, strict=True):
        ax.plot([r["target"], r["target"]], [y - 0.42, y + 0.42], color="black", lw=2)
    ax.set_yticks(
        ys, [_short(f"{'↑' if r['direction'] == 'increase' else '↓'} {r['behaviour']}") for r in rows]
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of outputs (black bar: target from the spec)")
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig)


def redteam_plot(rows: list[dict[str, Any]]) -> str:
    """Pass rate per red-team category with the required rate."""
    rows = [r for r in rows if r.get("pass_rate") is not None]
    if not rows:
        return ""
    fig = _figure(7.5, 0.8 + 0.45 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    colours = [_GREEN if r.get("status") == "pass" else _RED for r in rows]
    ax.barh(ys, [r["pass_rate"] for r in rows], color=colours, height=0.6)
    for y, r in zip(ys, rows, strict=True):
        ax.plot([r["required"], r["required"]], [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_yticks(ys, [_short(str(r["category"])) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("pass rate (black bar: required)")
    return _svg(fig)


def win_rate_plot(win_rates: list[dict[str, Any]], min_win_rate: float | None) -> str:
    """Win rate per comparison with its 95% CI as error bars, and the spec's minimum."""
    rows = [w for w in win_rates if w.get("rate") is not None]
    if not rows:
        return ""
    fig = _figure(7.5, 0.9 + 0.55 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    rates = [float(w["rate"]) for w in rows]
    lo = [max(0.0, r - float(w.get("ci_low", r))) for r, w in zip(rates, rows, strict=True)]
    hi = [max(0.0, float(w.get("ci_high", r)) - r) for r, w in zip(rates, rows, strict=True)]
    ax.errorbar(rates, ys, xerr=[lo, hi], fmt="o", color=_BLUE, capsize=6, lw=2, label="win rate, 95% CI")
    if min_win_rate is not None:
        ax.axvline(min_win_rate, color=_RED, ls="--", label=f"minimum {min_win_rate:g} (CI lower bound)")
    ax.axvline(0.5, color=_GREY, ls=":", lw=1)
    ax.set_yticks(ys, [_short(str(w.get("label", "candidate"))) for w in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlim(0, 1)
    ax.set_xlabel("win rate (grey dotted: 0.5)")
    ax.legend(loc="lower left", fontsize=8)
    return _svg(fig)


def curves_plot(curves: dict[str, list[tuple[float, float]]], reward_key: str = "reward") -> str:
    """KL and reward per training iteration, side by side."""
    panels = [(k, v) for k, v in (("kl", curves.get("kl")), ("reward", curves.get("reward"))) if v]
    if not panels:
        return ""
    fig = _figure(7.5, 2.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, pts) in zip(axes, panels, strict=True):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", ms=3, color=_BLUE if name == "kl" else _GREEN)
        ax.set_xlabel("iteration (step)")
        ax.set_title(curve_note(ys) if name == "kl" else f"reward ({reward_key or 'reward'})", fontsize=9)
        ax.grid(alpha=0.3)
    return _svg(fig)


def kl_frontier_plot(rows: list[dict[str, Any]], kind: str = "beta") -> str:
    """The KL sweep's frontier: held-out reward-model score and judge score against KL, one line per run.

    ``rows`` are ``kl_sweep.json`` rows (``value`` and ``frontier``: ``[{step, kl, score, judge_score}]``).
    Each point is an iteration, numbered; where the reward keeps rising with KL and the judge's score does
    not, more optimisation stopped paying (reward over-optimisation, Gao et al. 2022).
    """
    runs = [r for r in rows if r.get("frontier")]
    if not runs:
        return ""
    with_judge = any(p.get("judge_score") is not None for r in runs for p in r["frontier"])
    panels = [("score", "held-out reward-model score")]
    if with_judge:
        panels.append(("judge_score", "independent judge's score"))
    fig = _figure(7.5, 3.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for r in runs:
            pts = [p for p in r["frontier"] if p.get(key) is not None]
            if not pts:
                continue
            xs, ys = [p["kl"] for p in pts], [p[key] for p in pts]
            (line,) = ax.plot(xs, ys, marker="o", ms=3, label=f"{kind} {r['value']:g}")
            for p, x, y in zip(pts, xs, ys, strict=True):
                ax.annotate(
                    str(p["step"]),
                    (x, y),
                    fontsize=6,
                    color=line.get_color(),
                    xytext=(2, 2),
                    textcoords="offset points",
                )
        ax.set_xlabel("KL to the reference (nats per reply, k3)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    return _svg(fig)
