"""Progress for people: a tqdm bar on a terminal, a few whole lines in a log file.

When the stream progress goes to (stderr) is not a terminal (SLURM, CI,
``2> log``), a carriage-return bar would write every redraw into the file.
There the same tqdm bar writes through :class:`WholeLines`: one line every
``every_s`` seconds (tqdm's ``mininterval``), plus one at the start and one
at the end, each with tqdm's rate, elapsed time and ETA, so a 17-hour run logs
kilobytes, not megabytes.
"""

from __future__ import annotations

import sys

# One line per report in a log: what tqdm knows, without the bar itself.
LINE_FORMAT = ("{desc}: {n_fmt}/{total_fmt} steps, {rate_fmt}, {elapsed} elapsed, "
               "{remaining} left{postfix}")


class WholeLines:
    """A file for tqdm that writes each of its redraws as one whole line.

    tqdm redraws as ``"\\r" + status``; here the carriage return and padding go
    and a newline ends the line. A redraw of a count already written (tqdm
    redraws the last state when it closes) is dropped.
    """

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        count = line.split(",")[0]  # "desc: n/total steps"
        if line and count != self.last:
            self.stream.write(line + "\n")
            self.last = count

    def flush(self) -> None:
        self.stream.flush()


def on_terminal() -> bool:
    """Whether progress (stderr) goes to a terminal, not a log file."""
    return sys.stderr.isatty()


def bar(total: int, initial: int = 0, desc: str = "", disable: bool = False,
        every_s: float = 30.0, stream=None, **kwargs):
    """A tqdm bar on a terminal; else tqdm writing :class:`WholeLines` at most every
    ``every_s`` seconds (``stream``: default stderr)."""
    from tqdm.auto import tqdm

    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, disable=disable, unit="step",
                    dynamic_ncols=True, file=stream, **kwargs)
    # miniters 1: the time since the last line alone decides when the next is due
    return tqdm(total=total, initial=initial, desc=desc, disable=disable, unit="step",
                file=WholeLines(stream), mininterval=every_s, miniters=1,
                bar_format=LINE_FORMAT, **kwargs)


def steps(n: int, desc: str = "", disable: bool = False):
    """``range(n)`` that reports its progress as :func:`bar` does."""
    progress = bar(n, desc=desc, disable=disable)
    try:
        for i in range(n):
            yield i
            progress.update(1)
    finally:
        progress.close()
