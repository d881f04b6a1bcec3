"""`rlhfops demo`: the main job on the bundled model (thin: calls rlhfops.demo.run_demo and prints)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    quick: bool = typer.Option(False, "--quick", help="A first look: a few steps per stage."),
    out: Path = typer.Option(None, "--out", help="Where to write the runs (default runs/demo-<UTC time>)."),
) -> None:
    """SFT -> reward model -> DPO on the bundled SmolLM2-135M-Instruct and support-replies data."""
    from rich.console import Console
    from rich.table import Table

    from rlhfops.demo import run_demo

    result = run_demo(out, quick=quick)
    console = Console()
    table = Table(title=f"rlhfops demo ({result.seconds / 60:.1f} min) — runs in {result.out_dir}")
    for col in ("stage", "run directory", "result"):
        table.add_column(col)
    ev = {k: v.get("eval", {}) for k, v in result.summaries.items()}
    table.add_row(
        "sft",
        str(result.runs["sft"]),
        f"held-out loss {ev['sft'].get('base_eval_loss', 0):.3f} -> {ev['sft'].get('eval_loss', 0):.3f}",
    )
    table.add_row(
        "rm",
        str(result.runs["rm"]),
        f"held-out accuracy {ev['rm'].get('eval_accuracy', float('nan')):.2f}; "
        f"reward~length r={ev['rm'].get('reward_length_correlation') or 0:.2f}",
    )
    table.add_row(
        "dpo",
        str(result.runs["dpo"]),
        f"held-out implicit-reward accuracy {ev['dpo'].get('eval_accuracy', float('nan')):.2f}",
    )
    console.print(table)
    for row in result.samples:
        console.rule(f"[bold]prompt[/bold]: {row['prompt']}", align="left")
        for name in ("base", "sft", "dpo"):
            console.print(f"[bold]{name}[/bold]: ", end="")
            console.print(row.get(name, ""), markup=False, highlight=False)
