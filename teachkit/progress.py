"""Progress bars that suit where the output goes: fastprogress's bars in a notebook and a terminal, a few plain
lines in a log file (CI, batch jobs, torchrun workers), never bar redraws there.

Every bar in teachkit comes from here. fastprogress alone would write `█ |----` redraws into a log: its console
bar prints on construction, and its "is this a terminal?" test reads `stdout.isatty` without calling it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastprogress import fastprogress as fp

__all__ = ["bar_kind", "progress_bar", "master_bar", "ClosesWhenLeft", "NotebookBar", "TerminalBar", "PlainProgressBar",
           "PlainMasterBar", "aligned_row"]


def bar_kind() -> str:
    """Where output goes now: "notebook" (Jupyter, VS Code, Colab), "terminal", or "plain" (a file or a pipe)."""
    try:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821 (defined by IPython)
    except NameError:
        shell = None
    if "google.colab" in sys.modules or type(shell).__name__ == "ZMQInteractiveShell":
        return "notebook"
    isatty = getattr(sys.stdout, "isatty", None)
    return "terminal" if callable(isatty) and isatty() else "plain"


def master_bar(gen: Iterable, total: int | None = None) -> Any:
    """The outer bar (epochs) for where output goes now: its `write(row, table=True)` prints the stats table."""
    cls = {"notebook": fp.NBMasterBar, "terminal": fp.ConsoleMasterBar}.get(bar_kind(), PlainMasterBar)
    return cls(gen, total=total)


def progress_bar(gen: Iterable, total: int | None = None, leave: bool = True, parent: Any = None,
                 comment: str = "") -> Any:
    """A bar over `gen` (or `total` steps updated by hand); inside `parent`, a bar of the same kind as the parent."""
    if parent is not None:
        cls = getattr(parent, "pcls", PlainProgressBar)
        return cls(gen, total=total, parent=parent)
    kind = bar_kind()
    if kind == "plain":
        return PlainProgressBar(gen, total=total, comment=comment)
    cls = NotebookBar if kind == "notebook" else TerminalBar
    pb = cls(gen, total=total, leave=leave)
    pb.comment = comment
    return pb


class ClosesWhenLeft:
    """fastprogress marks a bar interrupted only when its iterable fails; this also does when the loop over it is
    left early, by an error or Ctrl-C in the loop's body (the bar's generator is then closed: GeneratorExit)."""

    def __iter__(self) -> Iterator:
        try:
            yield from super().__iter__()  # type: ignore[misc]
        except (GeneratorExit, KeyboardInterrupt):
            self.on_interrupt()  # type: ignore[attr-defined]
            raise


class NotebookBar(ClosesWhenLeft, fp.NBProgressBar):
    """fastprogress's HTML bar, closed when the loop over it is left early."""


class TerminalBar(ClosesWhenLeft, fp.ConsoleProgressBar):
    """fastprogress's console bar, its line cleared when the loop over it is left early."""


def aligned_row(row: list[str], widths: list[int]) -> str:
    """One table row, each cell padded to its column's width (as the notebooks' table is laid out)."""
    return "  ".join(c.ljust(w) for c, w in zip(row, widths))


class PlainProgressBar:
    """A bar for logs: one line when the work starts and one when it ends or stops; silent inside a master bar."""

    def __init__(self, gen: Iterable, total: int | None = None, parent: Any = None, comment: str = ""):
        self.gen, self.parent, self.label = gen, parent, comment or "progress"
        self.total = total if total is not None else (len(gen) if hasattr(gen, "__len__") else None)
        self.start_t: float | None = None
        self.last_v, self.finished = 0, False

    def __iter__(self) -> Iterator:
        self.update(0)
        try:
            for i, o in enumerate(self.gen):
                yield o
                self.update(i + 1)
        except BaseException:  # an error, Ctrl-C, or the caller leaving the loop early (GeneratorExit)
            self.on_interrupt()
            raise
        if not self.finished:  # a generator without len() ends here
            self.total = self.last_v
            self.update(self.last_v)

    def update(self, val: int) -> None:
        """Record that `val` steps are done; the first call says the work started, reaching `total` that it ended."""
        if self.start_t is None:
            self.start_t = time.time()
            self.say(f"{self.label}: started" + (f", {self.total} steps" if self.total is not None else ""))
        self.last_v = val
        if self.total is not None and val >= self.total and not self.finished:
            self.finished = True
            self.say(f"{self.label}: done, {val}/{self.total} in {fp.format_time(time.time() - self.start_t)}")

    def on_interrupt(self) -> None:
        """Say where the work stopped (once), if it had started and not finished."""
        if self.start_t is not None and not self.finished:
            self.finished = True
            self.say(f"{self.label}: stopped at {self.last_v}/{self.total if self.total is not None else '?'} "
                     f"after {fp.format_time(time.time() - self.start_t)}")

    def on_iter_end(self) -> None:
        """Nothing to clear in a log."""

    def say(self, text: str) -> None:
        if self.parent is None:
            print(text, flush=True)


class PlainMasterBar:
    """The epoch bar for logs: no bar at all, only the table rows `write` gets (one line per epoch)."""

    pcls = PlainProgressBar

    def __init__(self, gen: Iterable, total: int | None = None):
        self.gen, self.total = gen, total if total is not None else len(gen)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        yield from self.gen

    def write(self, line: Any, table: bool = False) -> None:
        """Print a line, or a table row aligned under the header (the first row written)."""
        if not table:
            print(line, flush=True)
            return
        if not hasattr(self, "widths"):
            self.widths = [max(len(c), 8) for c in line]
        print(aligned_row(list(line), self.widths), flush=True)

    def update(self, val: int) -> None:
        """Epoch `val` started: nothing to draw."""

    def on_iter_begin(self) -> None:
        """Nothing to draw."""

    def on_iter_end(self) -> None:
        """Nothing to clear."""

    def on_interrupt(self) -> None:
        """Nothing to clear."""
