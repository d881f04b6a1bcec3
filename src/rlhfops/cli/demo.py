"""`rlhfops demo`: the five plays end to end (thin: calls rlhfops.demo_plays.run_demo_plays and prints)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rlhfops.demo_plays import STEPS, DemoSettings, run_demo_plays


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
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("rlhfops demo", total=len(STEPS))
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, description=name)

        run = run_demo_plays(dir_, quick=quick, force=force, settings=settings, on_step=step)
        bar.advance(task)
    s = run.summary
    table = Table(title=f"rlhfops demo ({run.seconds / 60:.1f} min) — held-out success criteria, KL paid")
    for col in ("model", "apologises + remedy", "refuses benign", "win rate vs base [95% CI]", "KL (to)"):
        table.add_column(col)
    for r in s["criteria"]:
        wr = (
            "-"
            if r["win_rate_vs_base"] is None
            else (f"{r['win_rate_vs_base']:.2f} [{r['win_rate_ci'][0]:.2f}, {r['win_rate_ci'][1]:.2f}]")
        )
        table.add_row(
            r["model"],
            f"{r['apology_remedy_rate']:.0%} (n={r['n']})",
            f"{r['refusal_rate']:.0%}",
            wr,
            f"{r['kl']:.3f} ({r['kl_reference'] or '-'})",
        )
    console.print(table)
    ann = s["annotation"]
    console.print(
        f"[bold]Play 3 (SIMULATED raters)[/bold]: {ann['kept']} pairs exported, Krippendorff's alpha "
        f"{ann['alpha'] if ann['alpha'] is None else round(ann['alpha'], 3)}; calibration "
        f"{ann['calibration']['message']}; drifting rater {', '.join(ann['drifting'])}",
        markup=True,
        highlight=False,
    )
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
    for note in s["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    for ex in s.get("examples") or []:
        console.print(f"\nheld-out prompt: {ex['prompt']}", markup=False, highlight=False)
        console.print(f"  before (base): {ex['before'][:300]}", markup=False, highlight=False)
        console.print(f"  after ({ex['after_model']}): {ex['after'][:300]}", markup=False, highlight=False)
    console.print(f"\nruns: {run.out_dir / 'runs'}", highlight=False)
    console.print(f"report: {run.report}\nworkspace: {run.out_dir} (cd there and try `rlhfops status`)")
