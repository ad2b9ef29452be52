"""Progress in a log file: tqdm's numbers in whole lines, a few of them, no carriage returns."""

import io

from jax_translate import progress


def test_log_lines_are_rare_whole_and_say_rate_and_eta():
    out = io.StringIO()
    bar = progress.bar(total=1000, initial=100, desc="cyclegan x3", every_s=1e9, stream=out)
    for _ in range(90):
        bar.set_postfix_str("generator=1.234", refresh=False)
        bar.update(10)
    bar.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    # one line where it starts (a resumed run: at 100) and one at the end, none between
    assert [line.split(",")[0] for line in lines] == ["cyclegan x3: 100/1000 steps",
                                                      "cyclegan x3: 1000/1000 steps"]
    assert "step/s" in lines[1] and "elapsed" in lines[1] and "left" in lines[1]
    assert lines[1].endswith("generator=1.234")


def test_every_update_when_asked_and_silent_when_disabled():
    out = io.StringIO()
    bar = progress.bar(total=5, every_s=0.0, stream=out)
    for _ in range(5):
        bar.update()
    bar.close()  # redraws 5/5: not written twice
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        f"{i}/5 steps" for i in range(6)]  # no desc: no ": "
    quiet = io.StringIO()
    bar = progress.bar(total=5, every_s=0.0, stream=quiet, disable=True)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""


def test_not_a_terminal_gets_lines(capsys):
    assert list(progress.steps(3, desc="classifier")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("classifier: 3/3 steps")
