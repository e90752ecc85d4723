"""A tick progress bar for long runs, on stderr so stdout stays the command's output."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

ProgressFn = Callable[[int, int], None]


@contextmanager
def tick_progress(console: Console | None, enabled: bool = True, label: str = "backtest") -> Iterator[ProgressFn | None]:
    """Yield a ``progress(done, total)`` callback that drives a rich bar on ``console`` (None
    when disabled; ``console`` is then not used and may be None).

    The bar is transient: it disappears when the run ends, leaving the summary.
    """
    if not enabled:
        yield None
        return
    # Here, not at import: rich.progress costs ~5 ms, and only a run on a terminal draws a bar.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ticks"),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update
