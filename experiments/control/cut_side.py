"""The torch side of the control: the CUT repository's own CycleGAN, trained on our domains.

    python experiments/control/cut_side.py --cut-repo CUT --export OUT/export --out OUT \
        --steps 3000 --eval-every 500 [--member ratio=1/seed=0] [--threads 2] \
        [-- extra CUT flags]

Run by ``run.py``, which writes the member's domains with ``export_domains``
(``image_format="npy"``) and judges what this writes with ``judge``; it imports
numpy, torch and the user's checkout of taesungp/contrastive-unpaired-translation,
and nothing of jax_translate, so it runs in any Python that has torch and pillow.
The CUT code stays in that checkout: this file only calls its API, as its
``train.py`` does: ``options.train_options.TrainOptions(cmd_line).parse()``,
``models.create_model(opt)``, ``model.data_dependent_initialize``,
``model.setup(opt)``, ``model.set_input``, ``model.optimize_parameters()``,
``model.update_learning_rate()``, ``model.get_current_losses()`` and
``model.netG_A`` for the holdout translations.

Its domains are the export's files of one member (``--member``, the folder
``ratio=R/seed=S``; optional when the export holds one member):
``trainA/<id>.npy`` (source domain), ``trainB/<id>.npy`` (target domain) and
``testA/<id>.npy`` (the holdout sources), each in ``manifest.json``'s id order.
Torch, numpy and Python's ``random`` are seeded with the member's seed.

Differences from CUT's ``train.py``, each because our data is arrays, not image files:
- images are the export's float32 arrays in [0, 1], mapped to [-1, 1] as CUT's
  ``Normalize((0.5,), (0.5,))`` does; no resize, crop or flip;
- each step draws one source and one target slice uniformly with replacement
  (our engine's sampling); CUT's loader walks A in order and draws B at random;
- an "epoch" of CUT's linear schedule is ``--epoch-steps`` steps (default
  steps / 100), so the learning rate is constant for half the steps and then
  decays linearly to 0, the shape of our per-step schedule;
- ``parallelize()`` is skipped: on a CPU it only wraps each net in DataParallel.

Writes into OUT, at every ``--eval-every`` steps and at the last step,
``translations/step=<k>/ratio=R/seed=S/translations.npz`` (the holdout sources'
translations, float32 (H, W) in [0, 1], keyed by their ids: what ``judge``
reads) and one JSON line in ``rows.jsonl`` (step, seconds, CUT's losses); and
CUT's own option file under ``OUT/cut/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import io
import json
import math
import os
import random
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# CUT's option parser imports its data modules, which import torchvision's
# transforms for image files; the model code does not use them. Where
# torchvision is not installed, this stub (our own, two empty modules) stands in.
STUB = os.path.join(HERE, "stub")
EVAL_BATCH = 25
MANIFEST = "manifest.json"  # export_domains' (jax_translate/jobs/export_domains.py)


def cut_flags(out: str, steps: int, epoch_steps: int, extra: list[str]) -> list[str]:
    """CUT's command line: its cycle_gan model at the cpu preset's scale, on a CPU."""
    half = max(1, math.ceil(steps / epoch_steps / 2))
    return ["--dataroot", "unused", "--name", "cut", "--checkpoints_dir", out,
            "--model", "cycle_gan", "--gpu_ids", "-1", "--input_nc", "1", "--output_nc", "1",
            "--ngf", "16", "--ndf", "16", "--netG", "resnet_6blocks", "--no_dropout",
            "--no_antialias", "--no_antialias_up", "--batch_size", "1",
            "--load_size", "64", "--crop_size", "64", "--display_id", "-1",
            "--n_epochs", str(half), "--n_epochs_decay", str(half), *extra]


def to_model(images: np.ndarray):
    """(N, H, W) in [0, 1] -> a (N, 1, H, W) float32 tensor in [-1, 1]."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(images[:, None], dtype=np.float32) * 2 - 1)


def translate(generator, sources) -> np.ndarray:
    """The generator's translations of ``sources`` (a model-space tensor), in [0, 1]."""
    import torch
    with torch.no_grad():
        out = [np.asarray(generator(sources[k:k + EVAL_BATCH]), dtype=np.float32)
               for k in range(0, len(sources), EVAL_BATCH)]
    return (np.concatenate(out)[:, 0] + 1) / 2


def read_member(export: str, member: str | None) -> tuple[dict, dict]:
    """(the member's entry of the export's manifest, its domains): ``source``
    (trainA), ``target`` (trainB) and ``holdout`` (testA), (N, H, W) float32 arrays
    in the manifest's id order, and ``holdout_ids``."""
    path = os.path.join(export, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: cannot read the export manifest {path}: {err}")
    if manifest.get("image_format") != "npy":
        raise SystemExit(f"error: {export} holds {manifest.get('image_format')} images; "
                         "this reads an npy export (export_domains(..., image_format='npy'))")
    folders = [m["folder"] for m in manifest["members"]]
    if member is None:
        if len(folders) != 1:
            raise SystemExit(f"error: {export} holds {len(folders)} members; pick one with "
                             f"--member ({', '.join(folders)})")
        member = folders[0]
    if member not in folders:
        raise SystemExit(f"error: {export} holds no member {member}, only {', '.join(folders)}")
    entry = manifest["members"][folders.index(member)]

    def read(domain: str, ids: list[str]) -> np.ndarray:
        folder = os.path.join(export, entry["folder"], domain)
        return np.stack([np.load(os.path.join(folder, f"{i}.npy"), allow_pickle=False)
                         for i in ids]).astype(np.float32)

    return entry, {"source": read("trainA", entry["trainA"]),
                   "target": read("trainB", entry["trainB"]),
                   "holdout": read("testA", manifest["testA"]),
                   "holdout_ids": list(manifest["testA"])}


def save_translations(out: str, step: int, folder: str, ids: list[str],
                      translated: np.ndarray) -> str:
    """``OUT/translations/step=<step>/<folder>/translations.npz``, keyed by id: what
    ``judge`` reads as the member ``folder``'s translations."""
    where = os.path.join(out, "translations", f"step={step}", *folder.split("/"))
    os.makedirs(where, exist_ok=True)
    path = os.path.join(where, "translations.npz")
    images = np.clip(translated, 0.0, 1.0).astype(np.float32)
    np.savez_compressed(path, **dict(zip(ids, images)))
    return path


def data_dependent_initialize(model, data) -> None:
    """As CUT's train.py, which passes the first batch; its CycleGANModel's override
    takes no batch (calling it with one raises TypeError)."""
    if len(inspect.signature(model.data_dependent_initialize).parameters) == 0:
        model.data_dependent_initialize()
    else:
        model.data_dependent_initialize(data)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cut-repo", required=True)
    parser.add_argument("--export", required=True,
                        help="an npy export of export_domains (its manifest.json and folders)")
    parser.add_argument("--member", help="the member's folder, ratio=R/seed=S (default: the "
                        "export's only member)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--eval-every", type=int, required=True)
    parser.add_argument("--epoch-steps", type=int, default=0,
                        help="steps per epoch of CUT's schedule (default: steps / 100)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("CONTROL_THREADS", 2)))
    parser.add_argument("extra", nargs="*", help="more CUT flags, after --")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.cut_repo))
    if importlib.util.find_spec("torchvision") is None:
        sys.path.insert(1, STUB)
    member, arrays = read_member(args.export, args.member)
    import torch
    from options.train_options import TrainOptions
    from models import create_model

    seed = int(member["seed"])
    torch.set_num_threads(args.threads)
    torch.manual_seed(seed)  # CUT seeds nothing: weights and its image pool use these
    random.seed(seed)
    np.random.seed(seed)
    os.makedirs(args.out, exist_ok=True)
    source, target, holdout = (to_model(arrays[k]) for k in ("source", "target", "holdout"))

    epoch_steps = args.epoch_steps or max(1, args.steps // 100)
    flags = cut_flags(os.path.join(args.out, "cut"), args.steps, epoch_steps, args.extra)
    if any(len(flag.split()) != 1 for flag in flags):  # CUT splits cmd_line on whitespace
        raise SystemExit(f"error: CUT's options cannot hold whitespace: {flags}")
    opt = TrainOptions(cmd_line=" ".join(flags)).parse()
    if not hasattr(opt, "amp"):  # its CycleGANModel reads opt.amp, which no option defines
        opt.amp = False
    model = create_model(opt)

    draws = np.random.default_rng([seed, 7])
    rows_path = os.path.join(args.out, "rows.jsonl")
    open(rows_path, "w").close()
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i, j = draws.integers(len(source)), draws.integers(len(target))
        data = {"A": source[i:i + 1], "B": target[j:j + 1], "A_paths": [""], "B_paths": [""]}
        if step == 1:
            data_dependent_initialize(model, data)
            model.setup(opt)
        model.set_input(data)
        model.optimize_parameters()
        if step % epoch_steps == 0:
            with contextlib.redirect_stdout(io.StringIO()):  # one line per call
                model.update_learning_rate()
        if step % args.eval_every == 0 or step == args.steps:
            save_translations(args.out, step, member["folder"], arrays["holdout_ids"],
                              translate(model.netG_A, holdout))
            losses = {k: round(float(v), 4) for k, v in model.get_current_losses().items()}
            row = {"step": step, "secs": round(time.time() - t0, 1), **losses}
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
