"""Run folders: the one place that knows their files and how to read them.

A sweep's folder (:class:`RunFolder`) holds ``config.json`` (the resolved
:class:`SweepConfig`), ``run.json`` (how it ran, and whether it finished),
``metrics/`` (one JSONL file per member), ``tensorboard/`` (a folder of event
files per member), ``checkpoints/`` (Orbax, the
stacked state of the real members) and, once evaluated, ``results.*``,
``translations.npz`` and figures. A study's folder (:class:`StudyFolder`,
what ``reproduce`` writes) holds one run folder per method and the combined
results and figures. The jobs (sweep, evaluate_run, reproduce) and the tests
reach those files through these two classes.
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
from jax_translate.errors import UsageError
from jax_translate.evaluation import results
from jax_translate.images import image_shape as size_to_shape
from jax_translate.runtime import checkpoints, distributed
from jax_translate.training.methods import Method, Parts

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
METRICS_DIR = "metrics"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
TRANSLATIONS = "translations.npz"
BIAS_CURVES = "bias_curves.png"
EXAMPLES = "examples.png"
LOSSES = "losses.png"
FLIPS = "flips.png"
CONTRAST = "contrast.png"


def member_name(member) -> str:
    """A member's name (``config.Member.name``): ``ratio=0.5/seed=1[/field=value...]``."""
    return member.name


def parse_metrics_line(line: str) -> dict | None:
    """A metrics line, or None for a blank one or one cut short by a killed process."""
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def state_template(cfg: SweepConfig, image_shape: tuple[int, int], parts: Parts = Parts()):
    """Shapes and dtypes of the stacked state of ``cfg``'s members; computes nothing."""
    method = Method(cfg, parts=parts)
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

    def metrics_path(self, member) -> Path:
        return self.metrics_dir / (member_name(member).replace("/", "_") + ".jsonl")

    def tensorboard_path(self, member) -> Path:
        """The member's TensorBoard event files: one folder per member, named by its name."""
        return self.path / TENSORBOARD_DIR / member_name(member)

    def metrics(self, cfg: SweepConfig | None = None) -> dict[str, list[dict]]:
        """Each member's logged rows (``train/...`` values by step), by member name."""
        out = {}
        for member in (cfg or self.config()).members:
            path = self.metrics_path(member)
            lines = path.read_text().splitlines() if path.exists() else []
            out[member_name(member)] = [
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

    def restore_final(self, cfg: SweepConfig | None = None, parts: Parts = Parts()):
        """The stacked state at the last step; refused if there is none."""
        cfg = cfg or self.config()
        template = state_template(cfg, self.image_shape(cfg), parts)
        step, states = checkpoints.restore_latest(self.manager(), template)
        if states is None or step < cfg.steps:
            raise UsageError(f"no final checkpoint in {self.checkpoints_dir} (latest: step "
                             f"{step}); rerun the same sweep command to complete it")
        return states

    def verify_final(self, cfg: SweepConfig, parts: Parts = Parts()) -> None:
        """Refuses (UsageError, no file changed) a damaged final checkpoint.

        Its files' digests are enough, read without Orbax; a checkpoint saved
        without them is restored and its array checksums compared.
        """
        mngr = self.manager()
        if not checkpoints.verify_files(mngr, mngr.latest_step()):
            self.restore_final(cfg, parts)

    def outputs(self) -> dict[str, Path]:
        """What ``evaluate_run`` writes, by name; results.csv and results.json last."""
        return {"translations": self.path / TRANSLATIONS, "bias_curves": self.path / BIAS_CURVES,
                "examples": self.path / EXAMPLES, "losses": self.path / LOSSES,
                "results_csv": self.path / RESULTS_CSV, "results_json": self.path / RESULTS_JSON}

    def is_evaluated(self) -> bool:
        return all(path.exists() for path in self.outputs().values())

    def results(self) -> dict:
        return json.loads((self.path / RESULTS_JSON).read_text())


@dataclasses.dataclass(frozen=True)
class StudyFolder:
    """What ``reproduce`` writes: one :class:`RunFolder` per method, and the study's
    combined ``results.csv``, ``results.json``, ``bias_curves.png`` and ``flips.png``."""

    path: Path

    @classmethod
    def create(cls, path: str | Path) -> "StudyFolder":
        return cls(io_utils.writable_dir(path, "output folder"))

    def method(self, name: str) -> RunFolder:
        return RunFolder(self.path / name)

    results_csv = property(lambda self: self.path / RESULTS_CSV)
    results_json = property(lambda self: self.path / RESULTS_JSON)
    bias_curves = property(lambda self: self.path / BIAS_CURVES)
    flips = property(lambda self: self.path / FLIPS)
    contrast = property(lambda self: self.path / CONTRAST)


def result_files(run_dir: str | Path) -> list[Path]:
    """The per-method ``results.csv`` files of a study folder, or a sweep folder's own."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        return [run_dir / RESULTS_CSV] if (run_dir / RESULTS_CSV).exists() else []
    return sorted(p for p in run_dir.glob(f"*/{RESULTS_CSV}") if (p.parent / CONFIG_FILE).exists())


def read_runs(run_dirs, order=None) -> tuple[list[dict], dict[str, Path]]:
    """Rows of every method found in ``run_dirs`` and the file each method came
    from, methods in ``order(methods)`` (default: as found). A method in several
    folders is taken from the last one given."""
    by_method: dict[str, tuple[Path, list[dict]]] = {}
    for run_dir in run_dirs:
        for path in result_files(run_dir):
            rows = results.read_csv(path)
            for method in dict.fromkeys(r["method"] for r in rows):
                by_method[method] = (path, [r for r in rows if r["method"] == method])
    names = list(order(by_method) if order else by_method)
    return ([r for m in names for r in by_method[m][1]], {m: by_method[m][0] for m in names})
