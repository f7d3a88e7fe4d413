"""Progress of long work: a rich bar on a terminal, one-line records elsewhere (CI, nohup, a cluster job's log).

On a terminal the bar shows done/total, failures, rate, ETA and a note from the last finished item (a clip's metric,
a training step's loss). Off a terminal nothing redraws: a record such as

    [clips] 12/40 done, 1 failed, 0.52/s, ETA 54s  psnr 27.31

is printed every ``every`` seconds (30 by default) while it runs, and once more when it ends. Work that ends within
``every`` seconds prints nothing: short stages stay quiet, and a one-line error stays one line.
"""

from __future__ import annotations

import os
import sys
import time

RECORD_EVERY = 30.0  # seconds between off-terminal records; TALKBENCH_PROGRESS_EVERY overrides it (0: every update)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Bar:
    """``with Bar(total, "clips") as bar: bar.advance(note="psnr 27.3", failed=0)``; nothing at all when quiet."""

    def __init__(self, total: int | None, description: str, quiet: bool = False, *, unit: str = "",
                 every: float | None = None, stream=None, tty: bool | None = None):
        if every is None:
            every = float(os.environ.get("TALKBENCH_PROGRESS_EVERY", RECORD_EVERY))
        self.total, self.description, self.quiet, self.unit, self.every = total, description, quiet, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = (getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.done = self.failed = 0
        self.note = ""
        self._rich = None
        self._started = self._last = 0.0
        self._stop = None
        self._printed = False

    # ------------------------------------------------------------------------------------------------ life cycle
    def __enter__(self):
        self._started = self._last = time.monotonic()
        if self.quiet:
            return self
        if self.tty:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                  console=Console(file=self.stream), transient=False)
            self._rich.start()
            self._task = self._rich.add_task(self.description, total=self.total, failed="", note="")
        else:
            if self.every > 0:  # a heartbeat: a record every `every` s even while one long item runs
                import threading

                self._stop = threading.Event()
                threading.Thread(target=self._heartbeat, name="progress-records", daemon=True).start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(self.every, 1.0)):
            self.tick()

    def __exit__(self, *exc):
        if self._stop is not None:
            self._stop.set()
        if self._rich is not None:
            self._rich.stop()
        elif not self.quiet and self._printed:
            self._record(final=True)

    def tick(self) -> None:
        """Call from a waiting loop: prints the off-terminal record when ``every`` seconds passed."""
        if not self.quiet and self._rich is None and time.monotonic() - self._last >= self.every:
            self._record()

    def advance(self, n: int = 1, *, failed: int = 0, note: str | None = None) -> None:
        self.done += n
        self.failed += failed
        if note:
            self.note = note
        if self._rich is not None:
            self._rich.update(self._task, advance=n, note=self.note,
                              failed=f"[red]{self.failed} failed[/red]" if self.failed else "")
        else:
            self.tick()

    def update(self, done: int, *, note: str | None = None) -> None:
        """Set the absolute count (a training step after a resume); off a terminal every update is a record."""
        step = done - self.done
        self.done = done
        if note:
            self.note = note
        if self._rich is not None:
            self._rich.update(self._task, completed=done, note=self.note)
        elif not self.quiet:
            self.tick()
        return step

    # ---------------------------------------------------------------------------------------------------- text
    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def record(self, final: bool = False) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        parts = [f"[{self.description}] {self.done}{total} done", f"{self.failed} failed", f"{self.rate():.2f}/s"]
        if final:
            parts.append(f"took {format_seconds(time.monotonic() - self._started)}")
        else:
            parts.append(f"ETA {format_seconds(self.eta())}")
        return ", ".join(parts) + (f"  {self.note}" if self.note else "")

    def _record(self, final: bool = False) -> None:
        self._last = time.monotonic()
        self._printed = True
        print(self.record(final), file=self.stream, flush=True)
