"""Progress in a log file: whole lines, a few of them, no carriage returns."""

import io

from jax_translate import progress


def test_line_progress_prints_rarely_and_at_the_end():
    out = io.StringIO()
    bar = progress.LineProgress(total=1000, initial=100, desc="cyclegan x3", every_s=1e9,
                                stream=out)
    for _ in range(90):
        bar.set_postfix_str("generator=1.234")
        bar.update(10)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == [lines[0]] and lines[0].startswith("cyclegan x3: 1000/1000 steps, ")
    assert lines[0].endswith("generator=1.234")


def test_line_progress_every_update_when_asked_and_silent_when_disabled():
    out = io.StringIO()
    bar = progress.LineProgress(total=5, every_s=0.0, stream=out)
    for _ in range(5):
        bar.update()
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        f": {i}/5 steps" for i in range(1, 6)]
    quiet = io.StringIO()
    bar = progress.LineProgress(total=5, every_s=0.0, stream=quiet, disable=True)
    bar.update(5)
    assert quiet.getvalue() == ""


def test_not_a_terminal_gets_lines(capsys):
    assert list(progress.steps(3, desc="classifier")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines() == [err.splitlines()[-1]]
    assert err.startswith("classifier: 3/3 steps")
