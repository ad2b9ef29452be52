"""Progress for people: a tqdm bar on a terminal, a few plain lines in a log file.

When the stream progress goes to (stderr) is not a terminal (SLURM, CI,
``2> log``), a carriage-return bar would write every update into the file;
:class:`LineProgress` prints one line every ``every_s`` seconds instead,
plus one at the end, so a 17-hour run logs kilobytes, not megabytes.
"""

from __future__ import annotations

import sys
import time


class LineProgress:
    """The part of tqdm's API we use, printing whole lines at most every ``every_s``."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", every_s: float = 30.0,
                 stream=None, disable: bool = False, **_):
        self.total, self.n, self.desc, self.every_s = total, initial, desc, every_s
        self.stream, self.disable, self.postfix = stream or sys.stderr, disable, ""
        self.start = self.last = time.monotonic()
        self.start_n = initial

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.n >= self.total:
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        if self.disable:
            return
        rate = (self.n - self.start_n) / max(now - self.start, 1e-9)
        print(f"{self.desc}: {self.n}/{self.total} steps, {rate:.2f} steps/s, "
              f"{now - self.start:.0f}s {self.postfix}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        pass


def on_terminal() -> bool:
    """Whether progress (stderr) goes to a terminal, not a log file."""
    return sys.stderr.isatty()


def bar(total: int, initial: int = 0, desc: str = "", disable: bool = False, **kwargs):
    """A tqdm bar on a terminal, else a :class:`LineProgress` (same methods)."""
    if on_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, disable=disable, unit="step",
                    dynamic_ncols=True, **kwargs)
    return LineProgress(total, initial, desc, disable=disable)


def steps(n: int, desc: str = "", disable: bool = False):
    """``range(n)`` that reports its progress as :func:`bar` does."""
    progress = bar(n, desc=desc, disable=disable)
    try:
        for i in range(n):
            yield i
            progress.update(1)
    finally:
        progress.close()
