"""A run folder: the one place that knows its files and how to read them.

A sweep's folder holds ``config.json`` (the resolved :class:`SweepConfig`),
``run.json`` (how it ran, and whether it finished), ``metrics/`` (one JSONL
file per member), ``checkpoints/`` (Orbax, the stacked state of the real
members) and, once evaluated, ``results.*``, ``translations.npz`` and figures.
Training (:mod:`training.sweep`), evaluation, ``reproduce`` and the tests
reach those files through :class:`RunFolder`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp

from jax_translate import io_utils
from jax_translate.config import SweepConfig
from jax_translate.data.slices import image_shape as size_to_shape
from jax_translate.errors import UsageError
from jax_translate.training import checkpoints, distributed

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
METRICS_DIR = "metrics"
CHECKPOINTS_DIR = "checkpoints"
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def member_name(ratio: float, seed: int) -> str:
    return f"ratio={ratio:g}/seed={seed}"


def parse_metrics_line(line: str) -> dict | None:
    """A metrics line, or None for a blank one or one cut short by a killed process."""
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def load_splits(cfg: SweepConfig) -> dict:
    """The dataset ``cfg`` trains and evaluates on (built on first use)."""
    from jax_translate.data import dataset

    return dataset.load(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)


def state_template(cfg: SweepConfig, image_shape: tuple[int, int]):
    """Shapes and dtypes of the stacked state of ``cfg``'s members; computes nothing."""
    from jax_translate.training.methods import Method

    method = Method(cfg)
    keys = jax.ShapeDtypeStruct((len(cfg.members), 2), jnp.uint32)
    return jax.eval_shape(jax.vmap(functools.partial(method.init, image_shape=image_shape)), keys)


@dataclasses.dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def create(cls, path: str | Path) -> "RunFolder":
        """A folder to train in (made if needed); refused if it cannot be written."""
        return cls(io_utils.writable_dir(path, "workdir"))

    @classmethod
    def existing(cls, path: str | Path) -> "RunFolder":
        """A folder a sweep has written into; refused otherwise."""
        folder = cls(Path(path).expanduser().resolve())
        if not folder.path.is_dir():
            raise UsageError(f"workdir {folder.path} does not exist")
        if not folder.config_path.exists():
            raise UsageError(f"{folder.path} is not a sweep run folder (no {CONFIG_FILE}); "
                             "run `jax-translate sweep --workdir` first")
        return folder

    config_path = property(lambda self: self.path / CONFIG_FILE)
    run_path = property(lambda self: self.path / RUN_FILE)
    metrics_dir = property(lambda self: self.path / METRICS_DIR)
    checkpoints_dir = property(lambda self: self.path / CHECKPOINTS_DIR)

    def config(self) -> SweepConfig:
        return SweepConfig.load(self.config_path)

    def metrics_path(self, ratio: float, seed: int) -> Path:
        return self.metrics_dir / (member_name(ratio, seed).replace("/", "_") + ".jsonl")

    def metrics(self, cfg: SweepConfig | None = None) -> dict[str, list[dict]]:
        """Each member's logged rows (``train/...`` values by step), by member name."""
        out = {}
        for ratio, seed in (cfg or self.config()).members:
            path = self.metrics_path(ratio, seed)
            lines = path.read_text().splitlines() if path.exists() else []
            out[member_name(ratio, seed)] = [
                row for row in map(parse_metrics_line, lines) if row is not None]
        return out

    def bind(self, cfg: SweepConfig) -> bool:
        """Writes cfg into a new run folder, or checks it against the folder's.

        Returns True when the folder already held this run (a resume). In a
        multi-process run every process reads the folder before process 0
        writes to it, so they all take the same branch.
        """
        stored = self.config() if self.config_path.exists() else None
        distributed.barrier("bind_config:read")
        if stored is not None:
            diff = cfg.differences(stored)
            if diff:
                details = ", ".join(f"{k}: {getattr(stored, k)!r} -> {getattr(cfg, k)!r}"
                                    for k in diff[:4])
                raise UsageError(f"{self.path} holds a run with another config ({details}); "
                                 "use a new folder (--workdir, --out) or the same arguments")
            return True
        if distributed.is_primary():
            io_utils.atomic_write_text(self.config_path, cfg.to_json() + "\n")
        distributed.barrier("bind_config:written")
        return False

    def run_info(self) -> dict:
        try:
            return json.loads(self.run_path.read_text()) if self.run_path.exists() else {}
        except json.JSONDecodeError:
            return {}

    def write_run_info(self, info: dict) -> None:
        if distributed.is_primary():
            io_utils.atomic_write_json(self.run_path, info)

    def is_finished(self) -> bool:
        return bool(self.run_info().get("finished", False))

    def finished_config(self) -> SweepConfig:
        """The config of the finished sweep in this folder; refused if unfinished."""
        cfg = self.config()
        if not self.is_finished():
            raise UsageError(f"the sweep in {self.path} is not finished (no finished checkpoint); "
                             "rerun the same sweep command to complete it")
        return cfg

    def manager(self):
        return checkpoints.manager(self.checkpoints_dir)

    def image_shape(self, cfg: SweepConfig) -> tuple[int, int]:
        """The image shape trained on: run.json's, else the config's size."""
        shape = self.run_info().get("image_shape")
        if shape:
            return tuple(shape)
        return tuple(cfg.upscale * n for n in size_to_shape(cfg.size))

    def restore_final(self, cfg: SweepConfig | None = None):
        """The stacked state at the last step; refused if there is none."""
        cfg = cfg or self.config()
        template = state_template(cfg, self.image_shape(cfg))
        step, states = checkpoints.restore_latest(self.manager(), template)
        if states is None or step < cfg.steps:
            raise UsageError(f"no final checkpoint in {self.checkpoints_dir} (latest: step "
                             f"{step}); rerun the same sweep command to complete it")
        return states

    def verify_final(self, cfg: SweepConfig) -> None:
        """Refuses (UsageError, no file changed) a damaged final checkpoint.

        Its files' digests are enough, read without Orbax; a checkpoint saved
        without them is restored and its array checksums compared.
        """
        mngr = self.manager()
        if not checkpoints.verify_files(mngr, mngr.latest_step()):
            self.restore_final(cfg)

    def is_evaluated(self) -> bool:
        return (self.path / RESULTS_JSON).exists() and (self.path / "bias_curve.png").exists()

    def results(self) -> dict:
        return json.loads((self.path / RESULTS_JSON).read_text())
