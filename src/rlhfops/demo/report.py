"""`report.html` of `rlhfops demo`: the generic gate report (rlhfops.report) of the gated candidate, plus
demo sections (criteria before/after per model with KL, reward and KL per PPO iteration, win rates with
CIs, SIMULATED calibration rounds and gold accuracy, red-team pass rates per category, drift over time,
triggers, and held-out replies of the base and the candidate side by side for a person to read).

Plots are matplotlib SVGs embedded as base64 data images (as the generic report does); all text is
autoescaped by Jinja2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhfops.data.files import atomic_write_text
from rlhfops.demo.plays import ROUND_TWO_SKIPPED
from rlhfops.measures.kl_reading import NOTE as KL_NOTE
from rlhfops.measures.kl_reading import UNIT as KL_UNIT
from rlhfops.measures.kl_reading import curve_note
from rlhfops.report.data import curves_from_metrics, gate_report_data, read_metrics
from rlhfops.report.plots import _figure, _svg, kl_frontier_plot  # the report's matplotlib set-up
from rlhfops.report.render import fmt, render_html, svg_data_uri

SECTIONS = (
    "demo-simulated",
    "demo-criteria",
    "demo-curves",
    "demo-winrates",
    "demo-agreement",
    "demo-redteam",
    "demo-drift",
    "demo-triggers",
    "demo-side-by-side",
    "demo-rounds",
)

_TEMPLATE = """
<section id="demo-simulated"><h2>rlhfops demo: five plays</h2>
<p class="simulated"><strong>SIMULATED</strong>: rater labels, the baseline, and the production week
are simulated (rater names start with <code>sim-</code>); people are demo people. Every measurement is an
<code>rlhfops eval run</code> evaluation: the spec's main criterion by the policy judge (the spec's policy
facts; the raters' preference is separate code), red-team suites by their detectors.</p>
<ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul></section>
<section id="demo-criteria"><h2>Success criteria before and after (held-out prompts)</h2>
<div class="wide" tabindex="0"><table>
<tr><th>model</th><th>apologises + remedy (policy judge)</th><th>95% CI</th>
<th>refuses benign</th><th>95% CI</th>
<th>n</th><th>KL ({{ kl_unit }}, {{ kl_header }})</th><th>KL to</th></tr>
{% for r in criteria %}<tr><td>{{ r.model }}</td><td>{{ fmt(r.apology_remedy_rate) }}</td>
<td>[{{ fmt(r.apology_remedy_ci[0]) }}, {{ fmt(r.apology_remedy_ci[1]) }}]</td>
<td>{{ fmt(r.refusal_rate) }}</td>
<td>[{{ fmt(r.refusal_ci[0]) }}, {{ fmt(r.refusal_ci[1]) }}]</td><td>{{ r.n }}</td>
<td>{{ fmt(r.kl) }}{% if r.kl is not none and r.kl < 0 %} ({{ r.kl_note }}){% endif %}</td>
<td>{{ r.kl_reference or "-" }}</td></tr>{% endfor %}</table></div>
<img id="plot-demo-criteria" alt="success criteria per model" src="{{ plots.criteria }}"></section>
<section id="demo-curves"><h2>PPO: reward and KL per iteration (KL sweep)</h2>
<p>Recommended beta: {{ sweep.recommended }} ({{ sweep.reason }})</p>
<img id="plot-demo-curves" alt="reward and KL per iteration" src="{{ plots.curves }}">
{% if plots.frontier %}<p>The frontier: held-out reward-model score and the spec's main criterion
(an independent detector) against KL, per iteration; where the score rises and the criterion does not,
more optimisation has stopped paying (reward over-optimisation, Gao et al. 2022).</p>
<img id="plot-demo-frontier" alt="reward and judge score against KL" src="{{ plots.frontier }}">{% endif %}
</section>
<section id="demo-winrates"><h2>Win rate against the base model (95% CI)</h2>
<img id="plot-demo-winrates" alt="win rates" src="{{ plots.winrates }}"></section>
<section id="demo-agreement"><h2>SIMULATED raters: calibration rounds and gold accuracy</h2>
<p>Exported preferences: Krippendorff's alpha {{ fmt(ann.alpha) }} (spec min_agreement
{{ fmt(ann.min_agreement) }}), percent agreement {{ fmt(ann.percent_agreement) }};
drifting rater (by construction): {{ ann.drifting|join(", ") }};
flagged by gold accuracy: {{ ann.flagged|join(", ") or "none" }}.</p>
<div class="wide" tabindex="0"><table>
<tr><th>calibration round</th><th>guidelines</th><th>status</th><th>percent agreement</th>
<th>Krippendorff's alpha</th></tr>
{% for r in ann.calibration_rounds %}<tr><td>{{ r.round }}</td><td>{{ r.guidelines }}</td>
<td>{{ r.status }}</td>
<td>{{ fmt(r.overall_agreement) }}</td><td>{{ fmt(r.krippendorff_alpha) }}</td></tr>{% endfor %}</table></div>
<img id="plot-demo-agreement" alt="agreement per rater over time" src="{{ plots.agreement }}"></section>
<section id="demo-redteam"><h2>Red-team pass rate per category (first items of each shipped suite)</h2>
<img id="plot-demo-redteam" alt="red-team pass rates" src="{{ plots.redteam }}"></section>
<section id="demo-drift"><h2>Drift over the SIMULATED production week</h2>
<img id="plot-demo-drift" alt="drift over time" src="{{ plots.drift }}"></section>
<section id="demo-triggers"><h2>Triggers raised</h2>
<div class="wide" tabindex="0"><table><tr><th>play</th><th>rule</th><th>evidence</th></tr>
{% for t in triggers %}<tr><td>{{ t.play }}</td><td>{{ t.rule }}</td><td>{{ t.evidence }}</td></tr>
{% endfor %}
</table></div>{% if not triggers %}<p>No trigger fired.</p>{% endif %}</section>
<section id="demo-side-by-side"><h2>Held-out replies side by side: base vs {{ candidate }}</h2>
<div class="wide" tabindex="0"><table><tr><th>customer message</th><th>base</th><th>{{ candidate }}</th></tr>
{% for x in examples %}<tr><td>{{ x.prompt }}</td><td>{{ x.before }}</td><td>{{ x.after }}</td></tr>
{% endfor %}</table></div></section>
<section id="demo-rounds"><h2>Round one and round two (driven by the triggers)</h2>
{% if rounds.table %}
<p>Round two: `rlhfops next` acted on the open triggers; round one's best candidate ({{ rounds.best }}) failed
{{ rounds.n_failures }} item(s) of the red-team TRAINING half, each paired with a SIMULATED domain expert's
reply written for that item (a category template only as fallback) and labelled by the SIMULATED raters with
the batches `next` queued; the reward model was refreshed and DPO continued from {{ rounds.best }}. Every
red-team rate below is on the HELD-OUT half only; intervals are Wilson 95% (win rate: the interval `eval run`
reports; KL: a mean over sampled replies, no interval).</p>
<div class="wide" tabindex="0"><table>
<tr><th>round</th><th>model</th><th>apologises + remedy [95% CI]</th><th>refuses benign [95% CI]</th>
<th>win rate vs base [95% CI]</th><th>KL ({{ kl_header }}; to)</th>
{% for c in rounds.categories %}<th>{{ c }} (held-out half) [95% CI]</th>{% endfor %}<th>promoted</th></tr>
{% for r in rounds.table %}<tr><td>{{ r.round }}</td><td>{{ r.model }}</td>
<td>{{ fmt(r.apology_remedy_rate) }}
[{{ fmt(r.apology_remedy_ci[0]) }}, {{ fmt(r.apology_remedy_ci[1]) }}]</td>
<td>{{ fmt(r.refusal_rate) }} [{{ fmt(r.refusal_ci[0]) }}, {{ fmt(r.refusal_ci[1]) }}]</td>
<td>{% if r.win_rate_ci %}{{ fmt(r.win_rate_vs_base) }}
[{{ fmt(r.win_rate_ci[0]) }}, {{ fmt(r.win_rate_ci[1]) }}]
{% else %}-{% endif %}</td><td>{{ fmt(r.kl) }} ({{ r.kl_reference or "-" }})
{% if r.kl is not none and r.kl < 0 %}; {{ r.kl_note }}{% endif %}</td>
{% for c in rounds.categories %}{% set x = r.redteam_heldout.get(c) %}<td>{% if x %}{{ fmt(x.rate) }}
[{{ fmt(x.ci[0]) }}, {{ fmt(x.ci[1]) }}] ({{ x.passed }}/{{ x.n }}){% else %}-{% endif %}</td>{% endfor %}
<td>{{ "yes" if r.promoted else "no" }}</td></tr>{% endfor %}</table></div>
<p>Round one: {{ rounds.round1 }}. Round two: {{ rounds.round2 }}.</p>
<p>Contamination guard on the round-two candidate's evaluations: {{ rounds.guard }}.</p>
<div class="wide" tabindex="0"><table><tr><th>trigger</th><th>rule</th><th>next step</th></tr>
{% for s in rounds.next %}<tr><td>#{{ s.trigger_id }}</td><td>{{ s.rule }}</td><td>{{ s.line }}</td></tr>
{% endfor %}</table></div>
{% else %}<p>Round two did not run{% if rounds.skipped %}: {{ rounds.skipped }}{% endif %}.</p>
{% endif %}</section>
"""


def _decision_text(g: dict[str, Any]) -> str:
    if not g:
        return "-"
    if g.get("decision") == "approve":
        promoted = g.get("promoted") or f"no ({g.get('promote_refused', '')})"
        return f"{g['candidate']} approved; promoted: {promoted}"
    if g.get("decision") == "incomplete":
        return f"{g['candidate']} not signed: {g.get('promote_refused')}"
    return f"{g['candidate']} rejected; still failing: {', '.join(g.get('failed') or []) or '-'}"


def rounds_context(ctx: Any) -> dict[str, Any]:
    """What the rounds section shows (from round two's records and the round comparison table)."""
    from rlhfops.demo.round2 import rounds_table  # round two's modules load only when it ran

    table = rounds_table(ctx)
    r = ctx.rounds
    cont = r.get("contamination") or {}
    guard = (
        f"{len(cont.get('evaluations', []))} evaluation(s) checked against "
        f"{cont.get('training_artifacts', 0)} training-data artifact(s) in the lineage; "
        + (f"refused: {', '.join(x[:12] for x in cont['refused'])}" if cont.get("refused") else "no overlap")
    )
    steps = []
    for s in r.get("next", []):
        if s["kind"] == "queue":
            line = f"queued {s['queued']} comparison(s) as batch {s['batch']}"
            line += f" ({len(s['left_out'])} held-out item(s) left out)" if s["left_out"] else ""
        else:
            line = f"{s['kind']}: {s['command'] or s['what']}"
        closed = s["done"] or s["trigger_id"] in r.get("closed_after_round", [])
        steps.append({**s, "line": line + ("; closed" if closed else "; still open")})
    return {
        "table": table,
        "categories": sorted({c for row in table for c in row["redteam_heldout"]}),
        "best": r.get("round1_best", "-"),
        "n_failures": len(r.get("failure_pairs", [])),
        "round1": _decision_text(ctx.gate_result),
        "round2": _decision_text(r.get("gate") or {}),
        "guard": guard,
        "next": steps,
        "skipped": None if ctx.s.round_two else ROUND_TWO_SKIPPED,
    }


def _bar(labels: list[str], series: dict[str, list[float]], title: str, ylabel: str, errs=None) -> str:
    import numpy as np

    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        e = None if errs is None else np.clip(np.array(errs[name], dtype=float).T, 0, None)
        ax.bar(x + i * width, vals, width, label=name, yerr=e, capsize=3)
    ax.set_xticks(x + width * (len(series) - 1) / 2, labels, fontsize=7, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return _svg(fig)


def criteria_plot(rows: list[dict[str, Any]]) -> str:
    labels = [r["model"] for r in rows]
    series = {"apologises + remedy": [r["apology_remedy_rate"] for r in rows]}
    series["refuses benign"] = [r["refusal_rate"] for r in rows]
    errs = {
        "apologises + remedy": [
            (
                r["apology_remedy_rate"] - r["apology_remedy_ci"][0],
                r["apology_remedy_ci"][1] - r["apology_remedy_rate"],
            )
            for r in rows
        ],
        "refuses benign": [
            (r["refusal_rate"] - r["refusal_ci"][0], r["refusal_ci"][1] - r["refusal_rate"]) for r in rows
        ],
    }
    return _bar(labels, series, "Success criteria on held-out prompts (95% CI)", "rate", errs)


def curves_plot(runs: dict[str, Path]) -> str:
    """Reward and KL per iteration of each PPO run: the series the gate report draws
    (:func:`rlhfops.report.data.curves_from_metrics`: the same metric keys)."""
    fig = _figure(7, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    drawn = False
    kls: list[float] = []
    for name, run in runs.items():
        curves, _key = curves_from_metrics(read_metrics(Path(run) / "metrics.jsonl"))
        kls += [v for _, v in curves.get("kl") or []]
        for ax, series in ((ax1, curves.get("reward")), (ax2, curves.get("kl"))):
            if series:
                ax.plot(*zip(*series, strict=True), marker="o", label=name)
                drawn = True
    ax1.set_title("reward per iteration", fontsize=10)
    ax2.set_title(curve_note(kls) + " per iteration", fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7) if drawn else None
    return _svg(fig)


def winrate_plot(rows: list[dict[str, Any]], min_win: float | None) -> str:
    rows = [r for r in rows if r["win_rate_vs_base"] is not None]
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    for i, r in enumerate(rows):
        lo, hi = r["win_rate_ci"]
        w = r["win_rate_vs_base"]
        ax.errorbar([w], [i], xerr=[[max(0.0, w - lo)], [max(0.0, hi - w)]], fmt="o", capsize=4)
    ax.set_yticks(range(len(rows)), [r["model"] for r in rows])
    ax.axvline(0.5, color="#9e9e9e", ls=":")
    if min_win is not None:
        ax.axvline(min_win, color="#c62828", ls="--", label=f"spec min {min_win}")
        ax.legend(fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("win rate vs base (ties count half)")
    return _svg(fig)


def agreement_plot(rounds: list[dict[str, Any]], gold: dict[str, Any]) -> str:
    fig = _figure(7, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    xs = [r["round"] for r in rounds]
    ax1.plot(xs, [r.get("overall_agreement") for r in rounds], marker="o", label="percent agreement")
    ax1.plot(xs, [r.get("krippendorff_alpha") for r in rounds], marker="s", label="Krippendorff's alpha")
    ax1.legend(fontsize=6)
    for r in gold.get("raters", []) if isinstance(gold, dict) else []:
        ys = [w.get("accuracy") for w in r.get("windows", [])]
        ax2.plot(range(1, len(ys) + 1), ys, marker="o", label=r.get("rater"))
    ax1.set_title("calibration rounds (SIMULATED)", fontsize=8)
    ax2.set_title("gold accuracy over time (SIMULATED)", fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xlabel("batch")
        ax.set_ylim(0, 1.05)
    ax2.legend(fontsize=6)
    return _svg(fig)


def redteam_plot(rows: list[dict[str, Any]]) -> str:
    """Pass rate per category and model; a category a model was not evaluated on has no bar (not 0)."""
    cats = sorted({c for r in rows for c in r["redteam_pass"]})
    nan = float("nan")
    series = {r["model"]: [_or(r["redteam_pass"].get(c), nan) for c in cats] for r in rows}
    return _bar(cats, series, "Red-team pass rate per category", "pass rate")


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def drift_plot(windows: list[dict[str, Any]], auc_threshold: float | None) -> str:
    """The drift report's windows; the AUC line is the threshold the drift run used (its ``latest``)."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    x = list(range(1, len(windows) + 1))
    ax.plot(x, [w.get("auc") for w in windows], marker="o", label="domain-classifier AUC")
    ax.plot(x, [w.get("novel_share") for w in windows], marker="s", label="share of novel prompts")
    ax.plot(x, [w.get("mmd_p") for w in windows], marker="^", label="MMD p-value")
    if auc_threshold is not None:
        ax.axhline(auc_threshold, color="#c62828", ls="--", label=f"AUC drift threshold {auc_threshold:g}")
    for i, w in enumerate(windows):
        if w.get("drifted"):
            ax.axvspan(i + 0.5, i + 1.5, color="#ffcdd2", alpha=0.5)
    ax.set_xlabel("window (one simulated day each; red = drifted)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return _svg(fig)


def demo_sections(ctx: Any) -> str:
    import jinja2

    ppo_runs = {n: Path(r) for n, r in ctx.runs.items() if n.startswith("ppo-")}
    criteria = ctx.criteria_table()
    spec = ctx.ws.current_spec().spec
    svgs = {
        "criteria": criteria_plot(criteria),
        "curves": curves_plot(ppo_runs),
        "winrates": winrate_plot(criteria, spec.gate.min_win_rate if spec else None),
        "agreement": agreement_plot(
            ctx.annotation.get("calibration_rounds", []), ctx.annotation.get("gold", {})
        ),
        "redteam": redteam_plot(criteria),
        "drift": drift_plot(
            ctx.monitoring.get("input", {}).get("windows", []),
            (ctx.monitoring.get("input", {}).get("latest") or {}).get("auc_threshold"),
        ),
        "frontier": kl_frontier_plot(ctx.sweep.get("rows", [])),
    }
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        criteria=criteria,
        sweep={"recommended": ctx.sweep.get("recommended"), "reason": ctx.sweep.get("reason", "")},
        ann={
            "calibration_rounds": [],
            "min_agreement": None,
            "flagged": [],
            **ctx.annotation,
        },
        triggers=ctx.monitoring.get("open_triggers", []),
        notes=ctx.notes,
        candidate=ctx.gate_result.get("candidate", "-"),
        examples=ctx.examples(n=8),
        rounds=rounds_context(ctx),
        plots={k: svg_data_uri(v) if v else "" for k, v in svgs.items()},
        fmt=fmt,
        kl_unit=KL_UNIT,
        kl_header=KL_NOTE,
    )


def write_demo_report(ctx: Any, out: Path) -> Path:
    """The gate report of the gated candidate with the demo sections appended, written atomically."""
    data = gate_report_data(ctx.ws, ctx.gate_result["model_id"])
    data.title = f"rlhfops demo — {data.title}"
    html = render_html(data)
    extra = demo_sections(ctx)
    html = html.replace("</body>", extra + "\n</body>", 1) if "</body>" in html else html + extra

    atomic_write_text(out, html)
    return out
