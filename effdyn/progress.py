"""The one progress bar effdyn draws (rich, on stderr, so ``--json`` output stays clean).

Used by the ensemble solver, the training loop and the sweep runner::

    with progress_bar("training (gd)", total=steps, enabled=True) as bar:
        bar.advance(100, description="training (gd), loss 0.12")

With ``enabled=False`` the same code runs and nothing is drawn.
"""

from __future__ import annotations

from contextlib import contextmanager


class Bar:
    """A handle on one task of a drawn bar: :meth:`advance` moves it on."""

    def __init__(self, progress=None, task=None):
        self._progress = progress
        self._task = task
        self.drawn = progress is not None
        """Whether a bar is on the screen (False when progress is disabled)."""

    def advance(self, n: int = 1, *, description: str | None = None) -> None:
        """Advance by ``n`` units, optionally changing the description."""
        if self._progress is None:
            return
        if description is None:
            self._progress.update(self._task, advance=n)
        else:
            self._progress.update(self._task, advance=n, description=description)


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True, console=None):
    """A transient bar over ``total`` units on stderr; yields a :class:`Bar`.

    ``console`` (a ``rich.console.Console``) replaces the default stderr console, e.g. to
    capture the output in a test.
    """
    if not enabled:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=console or Console(stderr=True),
    )
    with progress:
        yield Bar(progress, progress.add_task(description, total=total))
