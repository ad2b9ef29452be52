"""A control anyone can rerun: the CUT repository's own CycleGAN on our data and domains,
scored by our evaluator.

    python experiments/control/run.py --cut-repo PATH/contrastive-unpaired-translation \
        --out runs/control [--export DATA/simulated_brats/64/2.0.0/splits.npz] \
        [--ratio 1.0] [--seed 0] [--steps 3000] [--eval-every 500] \
        [--source flair] [--target t1] [--torch-python PY] [--classifier auto|train|off] \
        [-- extra CUT flags, e.g. --lambda_identity 0]

If our CycleGAN fails the quality gate, is it our code? This trains the CycleGAN of
taesungp/contrastive-unpaired-translation (its ``cycle_gan`` model: losses,
networks, init, image pool, update order, scheduler; ngf/ndf 16, resnet_6blocks,
no dropout, batch 1) on the member our sweep would train: the same exported
slices (``dataset.read_export``), the same source and target domains
(``domains.unpaired_domains`` for ``--ratio`` and ``--seed``, sizes from
``--preset``) and the same holdout set (``domains.holdout_set``). Its holdout
translations at each evaluation step are scored here exactly as ours are:
fidelity r and SSIM inside the brain on healthy sources (the quality gate),
lesion preservation on tumor sources, hallucination on healthy ones, and the
evaluation classifier's flips where one is available.

Two processes, two Pythons: this one (jax_translate) writes ``OUT/inputs.npz``
and scores; ``cut_side.py`` (numpy, torch and the CUT checkout only) trains and
writes the translations. Torch and the CUT code never enter jax_translate's
environment, and the project never enters torch's. ``--torch-python`` (default
``$CONTROL_PYTHON``, else this Python) is the interpreter that has torch and
pillow. ``--score-only`` scores an existing OUT again (e.g. once a classifier
exists). The CUT code is never copied into this repository.

Writes into OUT: ``inputs.npz`` (the domains' images and indices), ``control.json``
(what ran, on what), ``trans_<step>.npz`` and ``rows.jsonl`` (cut_side.py) and
``control.csv`` (our scores per step), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from jax_translate.config import make_config
from jax_translate.data import dataset, domains
from jax_translate.errors import UsageError
from jax_translate.evaluation import metrics, quality
from jax_translate.images import MODALITIES

HERE = Path(__file__).resolve().parent
FIELDS = ("step", "secs", "fidelity_r", "fidelity_ssim", "lesion_preservation",
          "hallucination", "frac_pred_tumor_healthy", "frac_pred_tumor_tumor", "quality")


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


def member_inputs(train, test, cfg, ratio: float, seed: int, source: str, target: str) -> dict:
    """The arrays cut_side.py trains and translates, read by modality name: the
    domains of our sweep's member (``ratio``, ``seed``) of ``cfg`` from the
    ``train`` split, and the holdout set ``test``'s sources."""
    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    source_index, target_index = domains.unpaired_domains(
        train.label, train.patient_id, ratio, sizes, seed=seed)
    images_of(test, target, "holdout")  # scored against it: fail before training
    return {"source": images_of(train, source, "train")[source_index],
            "target": images_of(train, target, "train")[target_index],
            "holdout_source": images_of(test, source, "holdout"),
            "source_index": source_index, "target_index": target_index}


def score(translated: np.ndarray, test, target: str, clf=None) -> dict:
    """One translator's holdout translations, scored as ``results.member_rows`` scores
    ours (healthy sources: fidelity and hallucination; tumor sources: lesion
    preservation; flips if ``clf``)."""
    real = images_of(test, target, "holdout")
    if translated.shape != real.shape:
        raise UsageError(f"{translated.shape[0]} translations of shape {translated.shape[1:]}, "
                         f"but the holdout set has {real.shape}: another dataset or domain rule")
    healthy, tumor = test.label == 0, test.label == 1
    r = quality.pearson_in_brain(translated[healthy], real[healthy], test.brain_mask[healthy])
    ssim = quality.ssim_in_brain(translated[healthy], real[healthy], test.brain_mask[healthy])
    lesion = metrics.lesion_score(translated, real, test.label, test.tumor_mask, test.brain_mask)
    row = {"fidelity_r": float(np.nanmean(r)), "fidelity_ssim": float(np.nanmean(ssim)),
           "lesion_preservation": float(np.nanmean(lesion[tumor])),
           "hallucination": float(np.nanmean(lesion[healthy])),
           "frac_pred_tumor_healthy": None, "frac_pred_tumor_tumor": None,
           "quality": quality.quality_verdict("cyclegan", float(np.nanmean(r)))}
    if clf is not None:
        pred = np.asarray(clf.predict(translated, brain_mask=test.brain_mask), bool)
        row["frac_pred_tumor_healthy"] = float(pred[healthy].mean())
        row["frac_pred_tumor_tumor"] = float(pred[tumor].mean())
    return row


def score_folder(out: Path, test, target: str, clf=None) -> list[dict]:
    """Every evaluation cut_side.py logged in ``out/rows.jsonl``, scored."""
    logged = out / "rows.jsonl"
    if not logged.is_file():
        raise UsageError(f"{logged} is missing: cut_side.py has not run in {out}")
    rows = []
    for line in logged.read_text().splitlines():
        peer = json.loads(line)
        with np.load(out / f"trans_{peer['step']}.npz") as z:
            translated = z["translated"].astype(np.float32)
        rows.append({"step": peer["step"], "secs": peer["secs"],
                     **score(translated, test, target, clf)})
    if not rows:
        raise UsageError(f"{logged} holds no evaluation")
    return rows


def load_classifier(mode: str, cfg, splits: dict, folder: Path, target: str):
    """The evaluation classifier of ``target`` cached beside the export (``auto``), trained
    there if absent (``train``), or none (``off``)."""
    if mode == "off":
        return None
    from jax_translate.evaluation import classifier as classifier_lib
    ccfg = classifier_lib.config_for(cfg)
    cache = folder / "classifier"
    if mode == "auto" and not (cache / classifier_lib.cache_name(ccfg, target)
                               / "classifier.json").is_file():
        print(f"no {target} classifier cached in {cache}: flips left out "
              "(--classifier train trains one, minutes on a CPU)", flush=True)
        return None
    return classifier_lib.load_or_train(cache, splits, ccfg, progress=False, modality=target)


def run_cut(args, out: Path) -> None:
    command = [args.torch_python, str(HERE / "cut_side.py"), "--cut-repo", str(args.cut_repo),
               "--inputs", str(out / "inputs.npz"), "--out", str(out),
               "--steps", str(args.steps), "--eval-every", str(args.eval_every),
               "--seed", str(args.seed), "--threads", str(args.threads)]
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


def print_table(rows: list[dict], floor: float, source: str, target: str) -> None:
    print(f"\ncontrol cyclegan (CUT code), {source} -> {target}; "
          f"{source} used as {target}: r {floor:.3f}; gate r >= {quality.FIDELITY_GATE}")
    print("  step   secs  fidelity_r  ssim  lesion_kept  halluc  healthy->tumor  tumor->tumor  quality")
    fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))
    for row in rows:
        print(f"{row['step']:6d} {row['secs']:6.0f}  {row['fidelity_r']:10.3f}  "
              f"{row['fidelity_ssim']:4.2f}  {row['lesion_preservation']:11.2f}  "
              f"{row['hallucination']:6.3f}  {fmt(row['frac_pred_tumor_healthy'], '14.2f')}  "
              f"{fmt(row['frac_pred_tumor_tumor'], '12.2f')}  {row['quality']}")


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
    parser.add_argument("--classifier", choices=("auto", "train", "off"), default="auto")
    parser.add_argument("--score-only", action="store_true",
                        help="score OUT's saved translations again; train nothing")
    parser.add_argument("cut_flags", nargs="*", help="more CUT flags, after --")
    args = parser.parse_args(argv)
    if not args.score_only and args.cut_repo is None:
        parser.error("--cut-repo is required (a checkout of "
                     "taesungp/contrastive-unpaired-translation)")
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    cfg = make_config("cyclegan", args.preset)
    export = args.export or dataset.folder_for(cfg) / "splits.npz"
    if not export.is_file():
        raise SystemExit(f"error: no export at {export}: run `jax-translate data --export` "
                         "or pass --export")
    splits = dataset.read_export(export)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        test = domains.holdout_set(cfg, splits["holdout"])
        inputs = member_inputs(splits["train"], test, cfg, domains.check_ratio(args.ratio),
                               args.seed, args.source, args.target)
    except UsageError as error:
        raise SystemExit(f"error: {error}")
    if not args.score_only:
        np.savez(out / "inputs.npz", **inputs)
        meta = {"export": str(export.resolve()), "preset": args.preset, "ratio": args.ratio,
                "seed": args.seed, "steps": args.steps, "eval_every": args.eval_every,
                "source": args.source, "target": args.target, "cut_flags": args.cut_flags,
                "cut_repo": str(args.cut_repo), "cut_commit": cut_commit(args.cut_repo),
                "domain_sizes": [cfg.n_source, cfg.n_target, cfg.n_holdout],
                "holdout_seed": cfg.data_seed}
        (out / "control.json").write_text(json.dumps(meta, indent=1) + "\n")
        run_cut(args, out)
    clf = load_classifier(args.classifier, cfg, splits, export.parent, args.target)
    rows = score_folder(out, test, args.target, clf)
    with (out / "control.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    healthy = test.label == 0
    floor = float(np.nanmean(quality.pearson_in_brain(
        images_of(test, args.source, "holdout")[healthy],
        images_of(test, args.target, "holdout")[healthy], test.brain_mask[healthy])))
    print_table(rows, floor, args.source, args.target)
    print(f"wrote {out / 'control.csv'}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
