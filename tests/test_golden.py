"""Nothing a refactor does may change what a run computes (issue 38 item 4).

The shared tiny cyclegan sweep (conftest's ``tiny_run``: 2 members, 6 steps) is pinned
bit for bit: the SHA-256 of every array of its final states (networks, optimiser,
pools), of its translations of the holdout, and its logged losses, against
``tests/data/golden_tiny_run.json``. The numbers belong to the jax, jaxlib, flax and
optax they were recorded under (a new XLA may round differently); under others the
test says so and skips. After a change that *means* to change the numbers, or a new
pinned version:

    JAX_TRANSLATE_WRITE_GOLDEN=1 pytest tests/test_golden.py   # then commit the file
"""

import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_translate.jobs.run_folder import RunFolder
from jax_translate.training.methods import Method
from jax_translate.training.translate import translate_all

GOLDEN = Path(__file__).parent / "data" / "golden_tiny_run.json"
WRITE = os.environ.get("JAX_TRANSLATE_WRITE_GOLDEN") == "1"


def versions() -> dict:
    import flax
    import jaxlib
    import optax
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
            "optax": optax.__version__}


def digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(result, workdir, splits) -> dict:
    losses = {member: [{k: v for k, v in row.items() if k.startswith("train/") or k == "step"}
                       for row in rows]
              for member, rows in RunFolder(Path(workdir)).metrics(result.cfg).items()}
    translated = translate_all(Method(result.cfg), result.states.generator,
                               splits["holdout"].image(result.cfg.source))
    return {"states": digest(result.states), "translations": digest(translated),
            "losses": losses}


def test_the_tiny_run_computes_what_it_computed_before(tiny_run, tiny_splits):
    result, workdir = tiny_run
    got = fingerprint(result, workdir, tiny_splits)
    if WRITE:
        GOLDEN.write_text(json.dumps({"versions": versions(), **got}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    if golden["versions"] != versions():
        pytest.skip(f"the golden numbers were recorded under {golden['versions']}, this is "
                    f"{versions()}: JAX_TRANSLATE_WRITE_GOLDEN=1 pytest {__file__}")
    assert got["losses"] == golden["losses"]          # every logged loss, exactly
    assert got["translations"] == golden["translations"]
    assert got["states"] == golden["states"]
