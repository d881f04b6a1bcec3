"""Rich progress bars for training loops (quiet when disabled or not on the main process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(
    label: str, total: int, completed: int = 0, enabled: bool = True
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield ``advance(record)``: moves the bar one step and shows the record's loss."""
    if not enabled:
        yield lambda record: None
        return

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),  # elapsed, then the estimate of what is left
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(label, total=total, completed=completed, info="")

        def advance(record: dict[str, Any]) -> None:
            info = f"loss {record['loss']:.4f}" if "loss" in record else ""
            progress.update(task, advance=1, info=info)

        yield advance
