"""A control anyone can rerun: the CUT repository's own CycleGAN on our data and domains,
judged by ``jax-translate judge``.

    python experiments/control/run.py --cut-repo PATH/contrastive-unpaired-translation \
        --out runs/control [--export DATA/simulated_brats/64/2.0.0/splits.npz] \
        [--ratio 1.0] [--seed 0] [--steps 3000] [--eval-every 500] \
        [--source flair] [--target t1] [--torch-python PY] [--classifier cached|train] \
        [-- extra CUT flags, e.g. --lambda_identity 0]

If our CycleGAN fails the quality gate, is it our code? This trains the CycleGAN of
taesungp/contrastive-unpaired-translation (its ``cycle_gan`` model: losses,
networks, init, image pool, update order, scheduler; ngf/ndf 16, resnet_6blocks,
no dropout, batch 1) on the member our sweep would train, and judges its holdout
translations exactly as anyone's translator is judged. It uses the project's two
commands for outside translators around the user's checkout, and scores nothing
itself:

1. ``export_domains`` (``image_format="npy"``, lossless) writes the member's
   domains into ``OUT/export``: the slices of ``--export`` (a ``splits.npz``),
   the source and target domains of ``--ratio`` and ``--seed`` (sizes from
   ``--preset``) and the holdout set's sources. A config's seeds are 0 .. S-1,
   so it exports seeds 0 .. ``--seed`` of the one ratio, and the seeds before
   ``--seed`` are then removed again (their folders, manifest entries and
   checksums): the export holds exactly the member asked for.
2. ``cut_side.py`` (numpy, torch and the CUT checkout only) trains on that
   folder and writes its translations of ``testA`` at each evaluation step
   into ``OUT/translations/step=<k>/ratio=R/seed=S/translations.npz``.
3. ``judge`` scores each step (``OUT/judged/step=<k>/``: results.csv,
   results.json, figures) with the evaluation classifier, and once more the
   source images themselves as translations (``OUT/judged/source_as_target/``,
   the floor). ``control.csv`` holds one line per step, read from judge's rows:
   the healthy row's pixel r, SSIM, structure r, contrast error, gate verdict,
   lesion score (as hallucination) and flips, the tumor row's lesion score (as
   lesion preservation) and flips.

Two processes, two Pythons: torch and the CUT code never enter jax_translate's
environment, and the project never enters torch's. ``--torch-python`` (default
``$CONTROL_PYTHON``, else this Python) is the interpreter that has torch and
pillow. The classifier is the evaluation classifier of ``--target`` cached
beside the ``splits.npz`` (``--classifier cached``, the default: the run stops
before training if there is none) or trained there if absent (``--classifier
train``, minutes on a CPU). ``--score-only`` judges an existing OUT again, from
its export's manifest (``--ratio``, ``--seed``, ``--source``, ``--target`` and
``--preset`` are then read from there). The CUT code is never copied into this
repository.

Writes into OUT: ``export/`` (export_domains), ``control.json`` (what ran, on
what), ``translations/`` and ``rows.jsonl`` (cut_side.py: CUT's losses per
evaluation), ``judged/`` (judge) and ``control.csv``, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from jax_translate import io_utils
from jax_translate.config import SweepConfig
from jax_translate.configure import resolve
from jax_translate.data import dataset, domains
from jax_translate.errors import UsageError
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import quality
from jax_translate.images import MODALITIES
from jax_translate.jobs.export_domains import MANIFEST, export_domains, read_manifest, verify
from jax_translate.jobs.judge import judge

HERE = Path(__file__).resolve().parent
FIELDS = ("step", "secs", "fidelity_r", "fidelity_ssim", "structure_r", "contrast_error",
          "lesion_preservation", "hallucination", "frac_pred_tumor_healthy",
          "frac_pred_tumor_tumor", "quality")
NAME = "cut-cyclegan"         # the method judge's rows name (an outside translator: gated)
FLOOR = "source_as_target"    # the source images judged as translations


def images_of(split, modality: str, split_name: str) -> np.ndarray:
    """``split``'s images of ``modality``, or one clear error naming what the export holds."""
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    images = getattr(split, modality, None)
    if images is None:
        held = [m for m in MODALITIES if getattr(split, m, None) is not None]
        raise UsageError(f"the export's {split_name} split has no {modality!r} images, only "
                         f"{', '.join(held)}; build a dataset version that holds {modality} "
                         "(jax-translate data --export) or pick another --source/--target")
    return images


def member_config(preset: str, ratio: float, seed: int, source: str, target: str
                  ) -> SweepConfig:
    """The cyclegan config whose members are seeds 0 .. ``seed`` of the one ``ratio``:
    the smallest that holds the member (``ratio``, ``seed``)."""
    return resolve("cyclegan", preset, target_tumor_ratios=(domains.check_ratio(ratio),),
                       seeds=seed + 1, source=source, target=target)


def export_member(cfg: SweepConfig, splits: dict, folder: Path, seed: int) -> dict:
    """``export_domains`` of ``cfg`` (npy) into ``folder``, then only the member with
    ``seed`` kept: the other seeds' folders, manifest entries and checksums are
    removed. Returns the manifest, checked against its files."""
    manifest = export_domains(cfg, folder, splits, image_format="npy")
    keep = [m for m in manifest["members"] if m["seed"] == seed]
    if len(manifest["members"]) > 1:
        for member in manifest["members"]:
            if member["seed"] != seed:
                shutil.rmtree(folder / member["folder"])
        prefix = keep[0]["folder"] + "/"
        manifest = {**manifest, "members": keep,
                    "files": {k: v for k, v in manifest["files"].items()
                              if k.startswith(prefix)}}
        io_utils.atomic_write_json(folder / MANIFEST, manifest)
    verify(folder)
    return manifest


def load_classifier(mode: str, cfg: SweepConfig, splits: dict, folder: Path):
    """The evaluation classifier of ``cfg.target`` cached under ``folder/classifier``
    (``cached``: one clear error if there is none), trained there if absent (``train``)."""
    ccfg = classifier_lib.config_for(cfg)
    cache = folder / "classifier"
    if mode == "cached" and not (cache / classifier_lib.cache_name(ccfg, cfg.target)
                                 / "classifier.json").is_file():
        raise UsageError(f"no {cfg.target} evaluation classifier is cached in {cache}; "
                         "--classifier train trains one there (minutes on a CPU)")
    return classifier_lib.for_config(cfg, splits, progress=False, cache_dir=cache)


def control_row(rows: list[dict]) -> dict:
    """control.csv's columns from judge's rows of one member (a healthy and a tumor row)."""
    by_label = {row["source_label"]: row for row in rows}
    healthy, tumor = by_label["healthy"], by_label["tumor"]
    return {"fidelity_r": healthy["fidelity_r"], "fidelity_ssim": healthy["fidelity_ssim"],
            "structure_r": healthy["structure_r"], "contrast_error": healthy["contrast_error"],
            "lesion_preservation": tumor["lesion_score"],
            "hallucination": healthy["lesion_score"],
            "frac_pred_tumor_healthy": healthy["frac_pred_tumor"],
            "frac_pred_tumor_tumor": tumor["frac_pred_tumor"], "quality": healthy["quality"]}


def judge_steps(out: Path, splits: dict, clf) -> list[dict]:
    """Every evaluation cut_side.py logged in ``out/rows.jsonl``, judged (``judge``)."""
    logged = out / "rows.jsonl"
    if not logged.is_file():
        raise UsageError(f"{logged} is missing: cut_side.py has not run in {out}")
    rows = []
    for line in logged.read_text().splitlines():
        peer = json.loads(line)
        step = peer["step"]
        judged = judge(out / "export", out / "translations" / f"step={step}",
                       out / "judged" / f"step={step}", name=NAME, classifier=clf,
                       splits=splits, progress=False, log=lambda *a: None)
        print(f"judged step {step}: {judged.outputs['results_csv']}", flush=True)
        rows.append({"step": step, "secs": peer["secs"], **control_row(judged.rows)})
    if not rows:
        raise UsageError(f"{logged} holds no evaluation")
    return rows


def judge_floor(out: Path, manifest: dict, splits: dict, clf) -> dict:
    """The export's own testA (the source images) judged as translations: the floor."""
    export = out / "export"
    (member,) = manifest["members"]
    images = {i: np.load(export / member["folder"] / "testA" / f"{i}.npy", allow_pickle=False)
              for i in manifest["testA"]}
    folder = out / "translations" / FLOOR / member["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "translations.npz", **images)
    judged = judge(export, out / "translations" / FLOOR, out / "judged" / FLOOR, name=FLOOR,
                   classifier=clf, splits=splits, progress=False, log=lambda *a: None)
    return control_row(judged.rows)


def run_cut(args, out: Path, member: str) -> None:
    command = [args.torch_python, str(HERE / "cut_side.py"), "--cut-repo", str(args.cut_repo),
               "--export", str(out / "export"), "--member", member, "--out", str(out),
               "--steps", str(args.steps), "--eval-every", str(args.eval_every),
               "--threads", str(args.threads)]
    if args.cut_flags:
        command += ["--", *args.cut_flags]
    print(" ".join(command), flush=True)
    done = subprocess.run(command)
    if done.returncode:
        raise SystemExit(f"error: cut_side.py exited with {done.returncode}")


def cut_commit(repo: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def print_table(rows: list[dict], floor: dict, source: str, target: str) -> None:
    """``floor``: judge's row of ``source`` images used as ``target`` ones."""
    print(f"\ncontrol cyclegan (CUT code), {source} -> {target}; {source} used as {target}: "
          f"r {floor['fidelity_r']:.3f}, structure r {floor['structure_r']:.3f}")
    print(f"gate: structure r >= {quality.STRUCTURE_GATE}, "
          f"contrast error <= {quality.CONTRAST_TOLERANCE}")
    print("  step   secs  fidelity_r  structure_r  contrast_err  ssim  lesion_kept  halluc  "
          "healthy->tumor  tumor->tumor  quality")
    for row in rows:
        print(f"{row['step']:6d} {row['secs']:6.0f}  {row['fidelity_r']:10.3f}  "
              f"{row['structure_r']:11.3f}  {row['contrast_error']:12.3f}  "
              f"{row['fidelity_ssim']:4.2f}  {row['lesion_preservation']:11.2f}  "
              f"{row['hallucination']:6.3f}  {row['frac_pred_tumor_healthy']:14.2f}  "
              f"{row['frac_pred_tumor_tumor']:12.2f}  {row['quality']}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut-repo", type=Path,
                        help="a checkout of taesungp/contrastive-unpaired-translation")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path,
                        help="a dataset's splits.npz (jax-translate data --export); default: "
                             "the preset's dataset under $JAX_TRANSLATE_DATA_DIR")
    parser.add_argument("--preset", default="cpu", help="domain sizes and holdout seed (cpu)")
    parser.add_argument("--ratio", type=float, default=1.0, help="target tumor ratio")
    parser.add_argument("--seed", type=int, default=0, help="the member's seed (domains, torch)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--source", default="flair")
    parser.add_argument("--target", default="t1")
    parser.add_argument("--torch-python", default=os.environ.get("CONTROL_PYTHON", sys.executable))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classifier", choices=("cached", "train"), default="cached",
                        help="the evaluation classifier cached beside the splits.npz (cached), "
                             "or trained there if absent (train)")
    parser.add_argument("--score-only", action="store_true",
                        help="judge OUT's saved translations again; train nothing")
    parser.add_argument("cut_flags", nargs="*", help="more CUT flags, after --")
    args = parser.parse_args(argv)
    if not args.score_only and args.cut_repo is None:
        parser.error("--cut-repo is required (a checkout of "
                     "taesungp/contrastive-unpaired-translation)")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out = args.out
    try:
        if args.score_only:
            manifest = read_manifest(out / "export")
            cfg = SweepConfig.from_dict(manifest["config"])
        else:
            if (out / "export").exists():
                raise UsageError(f"{out} holds a control run already; use a new --out, or "
                                 "--score-only to judge it again")
            cfg = member_config(args.preset, args.ratio, args.seed, args.source, args.target)
        export = args.export or dataset.folder_for(cfg) / "splits.npz"
        if not export.is_file():
            raise UsageError(f"no export at {export}: run `jax-translate data --export` "
                             "or pass --export")
        splits = dataset.read_export(export)
        for modality in (cfg.source, cfg.target):  # one clear line, before anything is written
            images_of(splits["train"], modality, "train")
            images_of(splits["holdout"], modality, "holdout")
        clf = load_classifier(args.classifier, cfg, splits, export.parent)
        if not args.score_only:
            out.mkdir(parents=True, exist_ok=True)
            manifest = export_member(cfg, splits, out / "export", args.seed)
            meta = {"export": str(export.resolve()), "preset": args.preset, "ratio": args.ratio,
                    "seed": args.seed, "steps": args.steps, "eval_every": args.eval_every,
                    "source": args.source, "target": args.target, "cut_flags": args.cut_flags,
                    "cut_repo": str(args.cut_repo), "cut_commit": cut_commit(args.cut_repo),
                    "domain_sizes": [cfg.n_source, cfg.n_target, cfg.n_holdout],
                    "holdout_seed": cfg.data_seed, "member": manifest["members"][0]["folder"]}
            (out / "control.json").write_text(json.dumps(meta, indent=1) + "\n")
            run_cut(args, out, manifest["members"][0]["folder"])
        rows = judge_steps(out, splits, clf)
        floor = judge_floor(out, manifest, splits, clf)
    except UsageError as error:
        raise SystemExit(f"error: {error}")
    io_utils.write_csv(out / "control.csv", FIELDS, rows)
    print_table(rows, floor, cfg.source, cfg.target)
    print(f"wrote {out / 'control.csv'}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
