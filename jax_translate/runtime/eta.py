"""Projected wall time: steps left x members / measured member-steps/s.

``sweep`` prints it once the first timed calls are in (compilation and the
first call excluded), ``benchmarks/`` for the paper's whole protocol on the
measured machine.
"""

from __future__ import annotations

import time

PAPER_PROTOCOL = {"methods": 4, "ratios": 11, "steps": 200 * 700}  # 140,000 steps per member


def projected_seconds(steps_left: int, members: int, member_steps_per_s: float) -> float:
    """Seconds to run ``steps_left`` steps of ``members`` members at the measured rate."""
    if member_steps_per_s <= 0:
        raise ValueError(f"member-steps/s must be > 0, got {member_steps_per_s}")
    return max(steps_left, 0) * members / member_steps_per_s


def protocol_seconds(member_steps_per_s: dict[str, float], ratios: int = 11, seeds: int = 1,
                     steps: int = PAPER_PROTOCOL["steps"]) -> float:
    """The sum over methods of one sweep each (``ratios x seeds`` members, ``steps`` each)."""
    return sum(projected_seconds(steps, ratios * seeds, rate)
               for rate in member_steps_per_s.values())


def format_duration(seconds: float) -> str:
    """'2 h 05 min', '4 min 10 s' or '12 s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def eta_line(name: str, steps_left: int, members: int, member_steps_per_s: float) -> str:
    """One line for the log: the rate and the projected time to the end."""
    seconds = projected_seconds(steps_left, members, member_steps_per_s)
    return (f"{name}: {member_steps_per_s:.1f} member-steps/s, {steps_left} steps x {members} "
            f"members left: about {format_duration(seconds)}")


class FirstCallsTimer:
    """Times the first calls of a run after the first one, then reports the ETA once.

    The first call is left out (one-off transfers and allocations); the
    next ``max(1, 10 // steps_per_call)`` calls are timed, with one host
    sync at each end of the window and none after.
    """

    def __init__(self, name: str, members: int, steps_per_call: int, end_step: int, report):
        self.name, self.members, self.k, self.end_step = name, members, steps_per_call, end_step
        self.report, self.window = report, max(1, 10 // steps_per_call)
        self.calls, self.t0, self.member_steps_per_s = 0, None, None

    def after_call(self, states, done_step: int) -> None:
        import jax

        self.calls += 1
        if self.calls == 1 or self.calls == 1 + self.window:
            jax.block_until_ready(states)
            now = time.perf_counter()
            if self.t0 is None:
                self.t0 = now
                return
            steps = self.window * self.k
            self.member_steps_per_s = steps * self.members / (now - self.t0)
            self.report(eta_line(self.name, self.end_step - done_step, self.members,
                                 self.member_steps_per_s))
