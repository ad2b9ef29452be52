#!/usr/bin/env bash
# The whole study on one GPU (issue 14): `reproduce --preset gpu` (11 ratios x 3 seeds x
# 4 methods, 64x64), results copied into experiments/gpu_study/results/ (<= 16 MB).
#
# The GPU machine needs no internet and no tensorflow-datasets or nilearn: it reads the
# dataset's splits.npz export, built on a CPU machine first.
#
#   On a CPU machine with the package installed (pip install -e .), once (~2 min):
#     bash experiments/gpu_study/run.sh prepare DATA_DIR
#   builds the 64x64 dataset with its export (DATA_DIR/simulated_brats/64/2.0.0/
#   splits.npz, 47 MiB; the whole TFDS folder is 96 MB) and, if tqdm is not importable
#   on the GPU image, fetch its wheel: pip download tqdm -d experiments/gpu_study/wheels
#   Copy the repository and DATA_DIR/simulated_brats/64/2.0.0/splits.npz (same path
#   under the data folder) to the GPU machine.
#
#   On the GPU machine, from the repository root:
#     bash experiments/gpu_study/run.sh DATA_DIR
#   runs with PYTHONPATH=. (no install needed), logs to results/log.txt, writes
#   wall time, GPU and commit to results/run_info.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "prepare" ]]; then
  DATA_DIR="${2:?usage: run.sh prepare DATA_DIR}"
  jax-translate data --size 64 --data-dir "$DATA_DIR" --export
  du -sh "$DATA_DIR"/simulated_brats/64/2.0.0/splits.npz "$DATA_DIR"
  exit 0
fi

DATA_DIR="${1:?usage: run.sh DATA_DIR  (or: run.sh prepare DATA_DIR on a CPU machine)}"
OUT="${OUT:-runs/gpu_study}"
RESULTS="$HERE/results"
EXPORT="$DATA_DIR/simulated_brats/64/2.0.0/splits.npz"
[[ -f "$EXPORT" ]] || { echo "error: no $EXPORT; run 'run.sh prepare DATA_DIR' on a CPU machine and copy it" >&2; exit 1; }

# What the reproduce path imports beyond the standard library.
missing=$(python - <<'PY'
import importlib.util
mods = ["jax", "flax", "optax", "orbax.checkpoint", "numpy", "scipy", "matplotlib", "tqdm"]
print(" ".join(m for m in mods if importlib.util.find_spec(m.split(".")[0]) is None))
PY
)
if [[ -n "$missing" && -d "$HERE/wheels" ]]; then
  pip install --no-index --find-links "$HERE/wheels" $missing
elif [[ -n "$missing" ]]; then
  echo "error: missing python modules: $missing (bring wheels into $HERE/wheels)" >&2; exit 1
fi

mkdir -p "$RESULTS"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
python -m jax_translate.cli reproduce --preset gpu --data-dir "$DATA_DIR" --out "$OUT" \
  2>&1 | tee "$RESULTS/log.txt"
wall=$(( $(date +%s) - start ))

cp "$OUT/results.csv" "$OUT/results.json" "$OUT/bias_curves.png" "$OUT/flips.png" "$RESULTS/"
for method in cyclegan condgan l1 gan; do
  cp "$OUT/$method/examples.png" "$RESULTS/examples_$method.png" 2>/dev/null || true
done
{
  echo "command: bash experiments/gpu_study/run.sh DATA_DIR (reproduce --preset gpu)"
  echo "wall_seconds: $wall (dataset read, classifier, compiles, 4 sweeps, evaluation, figures)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo unknown)"
  python -c "import jax; print('jax', jax.__version__, jax.devices())"
} > "$RESULTS/run_info.txt"
cat "$RESULTS/run_info.txt"
size=$(du -sk "$RESULTS" | cut -f1)
echo "results: $RESULTS (${size} KiB)"
(( size <= 16384 )) || { echo "error: $RESULTS is over 16 MB" >&2; exit 1; }
