"""`rlhfops demo`: the five plays end to end (thin: calls rlhfops.demo.plays.run_demo_plays and prints)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlhfops.demo.plays import DemoSettings, run_demo_plays


def demo(
    quick: bool = typer.Option(False, "--quick", help="A first look: few steps, few prompts, short replies."),
    dir_: Path = typer.Option(
        Path("rlhfops-demo"), "--dir", help="Fresh workspace directory for the demo (must be empty)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --dir."),
    model: str = typer.Option(None, "--model", hidden=True, help="Base model (tests: a tiny model dir)."),
) -> None:
    """All five plays on the bundled SmolLM2-135M-Instruct and support-replies task, then a simulated
    week of production traffic with drift; writes report.html and summary.json in --dir."""

    console = Console()
    settings = DemoSettings.for_mode(quick, model)
    run = run_demo_plays(dir_, quick=quick, force=force, settings=settings)
    s = run.summary
    table = Table(title=f"rlhfops demo ({run.seconds / 60:.1f} min) — held-out success criteria, KL paid")
    for col in (
        "model",
        "apologises + remedy (policy)",
        "refuses benign",
        "win rate vs base [95% CI]",
        "KL (summed k3 >= 0; to)",
    ):
        table.add_column(col)
    for r in s["criteria"]:
        wr = (
            "-"
            if r["win_rate_vs_base"] is None
            else (f"{r['win_rate_vs_base']:.2f} [{r['win_rate_ci'][0]:.2f}, {r['win_rate_ci'][1]:.2f}]")
        )
        kl = "-" if r["kl"] is None else f"{r['kl']:.3f} ({r['kl_reference'] or 'base'})"
        table.add_row(
            r["model"], _pct(r["apology_remedy_rate"]) + f" (n={r['n']})", _pct(r["refusal_rate"]), wr, kl
        )
    console.print(table)
    ch = s["behaviour_change"]  # the gate's chosen candidate (rlhfops.gate.choose), computed by the demo run
    if ch and ch["points"] is not None:
        mode = "quick demo" if s["settings"]["quick"] else "demo"
        console.print(
            f"[bold]Result[/bold]: chosen candidate {ch['best']} meets the policy in {_pct(ch['rate'])} "
            f"of held-out replies vs the base's {_pct(ch['base'])} ({ch['points']:+.0f} points; the {mode}'s "
            f"target of {ch['target_points']:+g} points is " + ("met)" if ch["meets_target"] else "not met)"),
            highlight=False,
        )
    elif ch:
        console.print(f"[bold]Result[/bold]: chosen candidate {ch['best']}; main criterion not measured")
    g = s["gate"]
    console.print(
        f"[bold]Play 5 gate[/bold]: {g['candidate']} -> {g['decision']} by {g['signed_by']}"
        + (f" (failed: {', '.join(g['failed'])})" if g["failed"] else "")
        + (f"; promoted {g['promoted']}" if g["promoted"] else "; nothing promoted")
        + (f"; promote refused: {g['promote_refused']}" if g["promote_refused"] else ""),
        highlight=False,
    )
    for t in s["monitoring"]["open_triggers"]:
        console.print(f"[bold]trigger[/bold] -> play {t['play']}: {t['rule']}", highlight=False)
    g2 = (s.get("rounds") or {}).get("round2", {}).get("gate")
    if g2:
        console.print(
            f"[bold]Round 2 gate[/bold] (held-out half): {g2['candidate']} -> {g2['decision']} by "
            f"{g2['signed_by']}"
            + (f" (still failing: {', '.join(g2['failed'])})" if g2["failed"] else "")
            + (f"; promoted {g2['promoted']}" if g2["promoted"] else "; nothing promoted"),
            highlight=False,
        )
    for note in s["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    for ex in s.get("examples") or []:
        console.print(f"\nheld-out prompt: {ex['prompt']}", markup=False, highlight=False)
        console.print(f"  before (base): {ex['before'][:300]}", markup=False, highlight=False)
        console.print(f"  after ({ex['after_model']}): {ex['after'][:300]}", markup=False, highlight=False)
    console.print(f"\nruns: {run.out_dir / 'runs'}", highlight=False)
    console.print(f"report: {run.report}\nworkspace: {run.out_dir} (cd there and try `rlhfops status`)")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"
