"""The torch side of the control: the CUT repository's own CycleGAN, trained on our domains.

    python experiments/control/cut_side.py --cut-repo CUT --inputs inputs.npz --out OUT \
        --steps 3000 --eval-every 500 [--seed 0] [--threads 2] [-- extra CUT flags]

Run by ``run.py`` (which writes ``inputs.npz`` with our own domains and scores what
this writes); it imports numpy, torch and the user's checkout of
taesungp/contrastive-unpaired-translation, and nothing of jax_translate, so it
runs in any Python that has torch and pillow. The CUT code stays in that
checkout: this file only calls its API, as its ``train.py`` does:
``options.train_options.TrainOptions(cmd_line).parse()``, ``models.create_model(opt)``,
``model.data_dependent_initialize``, ``model.setup(opt)``, ``model.set_input``,
``model.optimize_parameters()``, ``model.update_learning_rate()``,
``model.get_current_losses()`` and ``model.netG_A`` for the holdout translations.

Differences from CUT's ``train.py``, each because our data is arrays, not image files:
- images come from ``inputs.npz`` (in [0, 1]), mapped to [-1, 1] as CUT's
  ``Normalize((0.5,), (0.5,))`` does; no resize, crop or flip;
- each step draws one source and one target slice uniformly with replacement
  (our engine's sampling); CUT's loader walks A in order and draws B at random;
- an "epoch" of CUT's linear schedule is ``--epoch-steps`` steps (default
  steps / 100), so the learning rate is constant for half the steps and then
  decays linearly to 0, the shape of our per-step schedule;
- ``parallelize()`` is skipped: on a CPU it only wraps each net in DataParallel.

Writes into OUT: ``trans_<step>.npz`` (``translated``: float32 (N, H, W) in [0, 1],
the holdout sources' translations in ``inputs.npz``'s order) at every
``--eval-every`` steps and at the last step, ``rows.jsonl`` (one JSON line per
evaluation: step, seconds, CUT's losses), and CUT's own option file under
``OUT/cut/``.
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
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--eval-every", type=int, required=True)
    parser.add_argument("--epoch-steps", type=int, default=0,
                        help="steps per epoch of CUT's schedule (default: steps / 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("CONTROL_THREADS", 2)))
    parser.add_argument("extra", nargs="*", help="more CUT flags, after --")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.cut_repo))
    if importlib.util.find_spec("torchvision") is None:
        sys.path.insert(1, STUB)
    import torch
    from options.train_options import TrainOptions
    from models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # CUT seeds nothing: weights and its image pool use these
    random.seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    with np.load(args.inputs) as z:
        source, target, holdout = (to_model(z[k]) for k in ("source", "target", "holdout_source"))

    epoch_steps = args.epoch_steps or max(1, args.steps // 100)
    flags = cut_flags(os.path.join(args.out, "cut"), args.steps, epoch_steps, args.extra)
    if any(len(flag.split()) != 1 for flag in flags):  # CUT splits cmd_line on whitespace
        raise SystemExit(f"error: CUT's options cannot hold whitespace: {flags}")
    opt = TrainOptions(cmd_line=" ".join(flags)).parse()
    if not hasattr(opt, "amp"):  # its CycleGANModel reads opt.amp, which no option defines
        opt.amp = False
    model = create_model(opt)

    draws = np.random.default_rng([args.seed, 7])
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
            translated = translate(model.netG_A, holdout)
            np.savez_compressed(os.path.join(args.out, f"trans_{step}.npz"),
                                translated=translated.astype(np.float32))
            losses = {k: round(float(v), 4) for k, v in model.get_current_losses().items()}
            row = {"step": step, "secs": round(time.time() - t0, 1), **losses}
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
