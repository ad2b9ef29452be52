#!/usr/bin/env bash
# The sweep benchmark on one GPU, self-contained: under 8 minutes on an H100/H200.
# For a ~15-minute lease, experiments/gpu/run.sh's speed part measures the paper-256 rows of
# step 2 (loop and vmap/patches, fp32 and bf16) with XLA's cost analysis and a profile
# (benchmarks/speed_profile.py); this script stays for the rest (cpu preset, PyTorch eager,
# the paper preset's four methods).
#
#   bash benchmarks/gpu.sh [OUT_DIR]      # default benchmarks/results
#
# Needs jax (CUDA), flax, optax, numpy and, for the baseline, torch (CUDA);
# nothing is downloaded and the package need not be installed (PYTHONPATH).
# Writes OUT_DIR/gpu-<card>-cpu-preset, -paper-256 and -paper .json/.md
# (see the three steps below). Steps 1 and 2 time every strategy in fp32 and
# in bf16 (--precisions), side by side: the bf16 rows (`axis/conv/bf16`) carry
# their speed-up over the same strategy in fp32 ("x fp32"), the numbers that
# decide whether bf16 becomes the GPU default (config.py `precision`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# JAX takes 75% of the card up front (its default); PyTorch's baseline, run
# in the same process, fits in the rest. A 50% pool was too small for 11
# paper-sized members with batched-matmul convolutions.
py=${PYTHON:-python3}

card=$($py - <<'EOF'
import jax, re
d = jax.devices()[0]
if d.platform != "gpu":
    raise SystemExit(f"benchmarks/gpu.sh needs a GPU; JAX sees {d.platform}")
print(re.sub(r"[^A-Za-z0-9]+", "-", d.device_kind).strip("-").lower())
EOF
)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# Budgets (--budget-s: no new row after that many seconds) keep the whole
# script under 8 minutes on an H100/H200; compiling is most of it (13-27 s
# per paper-sized program with lax.conv, ~50 s with patches, measured at
# 256x128 on an H100). Skipped rows are listed in each JSON's "skipped".

# 1. The cpu-preset model (64x64), cyclegan, N=11: the loop, vmap with
#    batched matmuls (the winner at this size), in fp32 and bf16; PyTorch eager (CUDA).
$py benchmarks/run.py --methods cyclegan --members 11 --strategies loop,vmap/patches \
    --precisions fp32,bf16 --min-seconds 2 --torch cuda --budget-s 80 --machine "$card" \
    --out "$out/gpu-$card-cpu-preset.json" || status=1

# 2. The paper's networks at 256x128 as issue 11's table measured them
#    (resize-conv, no dropout, no upscale), where the PyTorch baseline is the
#    same network: cyclegan, N=11, the loop, the candidates auto times, torch;
#    the loop and vmap/patches again in bf16 (map/xla in fp32 only: lax.map
#    is the open member-axis question, not a precision one).
$py benchmarks/run.py --preset paper --size 256x128 --upscale 1 --upsample resize --dropout 0 \
    --methods cyclegan --members 11 --steps-per-call 10 \
    --strategies loop,vmap/patches,map/xla --precisions fp32,bf16 --only "map/xla/bf16=" \
    --min-seconds 2 --torch cuda \
    --budget-s 190 --machine "$card" --out "$out/gpu-$card-paper-256.json" || status=1

# 3. The paper preset as `reproduce` runs it (512x256, transposed convs,
#    dropout 0.5), all four methods, N=11: the loop and vmap/patches (what
#    fits is in memory_bytes; an out-of-memory row is skipped, not fatal),
#    and the projected wall time of the whole protocol. No PyTorch: the
#    baseline has no transposed conv, dropout or upscale.
$py benchmarks/run.py --preset paper --size 256x128 --methods cyclegan,l1,gan,condgan \
    --members 11 --steps-per-call 10 --strategies loop,vmap/patches --min-seconds 2 \
    --torch none --budget-s 150 --machine "$card" --out "$out/gpu-$card-paper.json" || status=1
exit "${status:-0}"
