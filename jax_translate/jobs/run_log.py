"""Each member's scalars, as a sweep trains and once it is evaluated.

Training losses go to ``metrics/<member>.jsonl`` (what the jobs read back:
figures, resume) and, with the evaluation metrics, to TensorBoard event
files, one folder per member named by its member name
(``tensorboard/ratio=0.5/seed=1[/field=value...]``, tags ``train/...`` and
``eval/...``): ``tensorboard --logdir RUN_FOLDER`` shows them. The writer is
tensorboardX, which needs no TensorFlow.

A logged training value is the mean over every step since the previous
row (or since the resume), summed on the device between rows so that a call
costs no host sync; the compiled step itself returns the mean of its K steps.
Only process 0 writes files, but every process takes part in the sums'
gathering (a collective when the members span hosts).
"""

from __future__ import annotations

import functools
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate import io_utils
from jax_translate import progress as progress_lib
from jax_translate.config import SweepConfig
from jax_translate.jobs.run_folder import RunFolder, parse_metrics_line
from jax_translate.runtime import eta

# The evaluation metrics of a member's results rows written as eval/<metric>/<source_label>.
EVAL_METRICS = ("fidelity_r", "structure_r", "contrast_error", "frac_pred_tumor", "lesion_score")


@functools.partial(jax.jit, static_argnums=2)
def _add_steps(total, metrics, steps: int):
    """``total`` + each metric (a mean over ``steps`` steps) x ``steps``; None starts a sum."""
    scaled = jax.tree_util.tree_map(lambda m: m * steps, metrics)
    return scaled if total is None else jax.tree_util.tree_map(jnp.add, total, scaled)


def _crossed(before: int, after: int, every: int) -> bool:
    return after // every > before // every


def _writer(path, purge_step: int | None = None):
    from tensorboardX import SummaryWriter

    # purge_step: TensorBoard drops what an earlier writer logged at or after that step
    # in this folder, as the JSONL rows past the checkpoint are dropped on resume.
    return SummaryWriter(str(path), purge_step=purge_step or None, flush_secs=30)


def _summary(metrics: dict, diverged: np.ndarray, member_steps_per_s: float) -> str:
    ok = ~diverged
    parts = [f"{k.replace('_loss', '')}={np.median(v[ok]):.3f}" for k, v in metrics.items()
             if k in ("generator_loss", "discriminator_loss", "l1_loss") and ok.any()]
    parts.append(f"{member_steps_per_s:.1f} member-steps/s")
    if diverged.any():
        parts.append(f"{int(diverged.sum())} diverged")
    return " ".join(parts)


class TrainLog:
    """A sweep's log while it trains: the window sums, the rows, the progress bar and the ETA.

    ``after_call(step, done, end, states, metrics)`` after every compiled
    call; ``close()`` at the end (also after an error).
    """

    def __init__(self, folder: RunFolder, cfg: SweepConfig, layout, resume_step: int, end: int,
                 steps_per_call: int, primary: bool, progress: bool):
        from tqdm.auto import tqdm

        self.folder, self.cfg, self.layout, self.primary = folder, cfg, layout, primary
        self.total, self.window_steps = None, 0
        self.synced_step, self.synced_at = resume_step, time.perf_counter()
        n = len(cfg.members)
        self.bar = progress_lib.bar(cfg.steps, resume_step, f"{cfg.method} x{n}",
                                    disable=not (progress and primary))
        say = tqdm.write if progress and primary else (lambda line: None)
        self.timer = eta.FirstCallsTimer(cfg.method, n, steps_per_call, end, say)
        self.writers = []
        if not primary:
            return
        folder.metrics_dir.mkdir(exist_ok=True)
        for member in cfg.members:  # drop rows written after the checkpoint we resume from
            path = folder.metrics_path(member)
            if path.exists():
                kept = [line for line in path.read_text().splitlines()
                        if (row := parse_metrics_line(line)) is not None
                        and row["step"] <= resume_step]
                io_utils.atomic_write_text(path, "".join(k + "\n" for k in kept))
        self.writers = [_writer(folder.tensorboard_path(m), resume_step) for m in cfg.members]

    def after_call(self, step: int, done: int, end: int, states, metrics: dict) -> None:
        """Adds a call's metrics (the mean of its ``done - step`` steps) to the window;
        writes a row when the window ends (every ``log_every`` steps and at ``end``)."""
        self.timer.after_call(states, done)
        self.total = _add_steps(self.total, metrics, done - step)
        self.window_steps += done - step
        if _crossed(step, done, self.cfg.log_every) or done >= end:
            means = {k: v / self.window_steps for k, v in self.layout.to_host(self.total).items()}
            diverged = self.layout.to_host(states.diverged)
            self.total, self.window_steps = None, 0
            self._write(done, means, diverged)
            now = time.perf_counter()
            rate = (done - self.synced_step) * len(self.cfg.members) / (now - self.synced_at)
            self.synced_step, self.synced_at = done, now
            self.bar.set_postfix_str(_summary(means, diverged, rate), refresh=False)
        self.bar.update(done - step)

    def _write(self, step: int, means: dict, diverged: np.ndarray) -> None:
        if not self.primary:
            return
        for i, member in enumerate(self.cfg.members):
            row = {"step": step, **{f"train/{k}": float(v[i]) for k, v in means.items()},
                   "diverged": bool(diverged[i])}
            with self.folder.metrics_path(member).open("a") as f:
                f.write(json.dumps(row) + "\n")
            for tag, value in row.items():
                if tag.startswith("train/"):
                    self.writers[i].add_scalar(tag, value, step)
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        self.bar.close()
        for writer in self.writers:
            writer.close()


def write_eval_scalars(folder: RunFolder, cfg: SweepConfig, rows: list[dict]) -> None:
    """Each member's evaluation metrics, ``eval/<metric>/<source_label>``, at its last step,
    into the member's TensorBoard folder (beside its training losses)."""
    for member in cfg.members:
        mine = [row for row in rows if row["target_tumor_ratio"] == member.target_tumor_ratio
                and row["seed"] == member.seed
                and all(row.get(name) == value for name, value in member.knobs)]
        writer = _writer(folder.tensorboard_path(member))
        for row in mine:
            for name in EVAL_METRICS:
                value = row.get(name)
                if value is not None and math.isfinite(value):
                    writer.add_scalar(f"eval/{name}/{row['source_label']}", float(value),
                                      cfg.steps)
        writer.close()
