#!/usr/bin/env bash
# The sweep benchmark on one GPU, self-contained: about 7 minutes on an H100.
#
#   bash benchmarks/gpu.sh [OUT_DIR]      # default benchmarks/results
#
# Needs jax (CUDA), flax, optax, numpy and, for the baseline, torch (CUDA);
# nothing is downloaded and the package need not be installed (PYTHONPATH).
# Writes OUT_DIR/gpu-<card>.json/.md (the CPU-sized model, every strategy
# and N) and OUT_DIR/gpu-<card>-paper.json/.md (the paper's 256x128
# ResNet-9, loop vs vmap); with GPU_BENCH_QUICK=1, names end in -quick.
# Each run stops starting new rows after its --budget-s, so the whole script
# fits an 8-minute slot whatever the card.
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

# GPU_BENCH_QUICK=1: only N=11 and 22 (about 5 minutes), for a short lease.
if [[ ${GPU_BENCH_QUICK:-0} == 1 ]]; then
    members=11,22 strategies=loop,vmap/patches,vmap/xla only="vmap/xla=11" tag=-quick
    budget1=110 budget2=50
else
    budget1=240 budget2=100
    members=1,2,4,8,11,22 strategies=loop,vmap/patches,vmap/xla,map tag=
    only="loop/xla=1,11,22;vmap/xla=11;map/xla=11"
fi

# 1. The cpu-preset model (64x64): vmap with batched matmuls ('auto') at every
#    N; the flat host loop at three N; vmap over lax.conv (grouped convs) and
#    lax.map at 11; PyTorch eager (CUDA) at 11.
$py benchmarks/run.py --methods cyclegan --members "$members" \
    --strategies "$strategies" --only "$only" --min-seconds 2 \
    --torch cuda --budget-s "$budget1" --machine "$card" --out "$out/gpu-$card$tag.json" || status=1

# 2. The paper's networks at 256x128 (K=10 steps per call to keep calls short).
$py benchmarks/run.py --preset paper --size 256x128 --methods cyclegan --members 11 \
    --steps-per-call 10 --strategies loop,vmap/patches --min-seconds 2 --torch cuda \
    --budget-s "$budget2" --machine "$card" --out "$out/gpu-$card-paper$tag.json" || status=1
exit "${status:-0}"
