#!/usr/bin/env bash
# Issue 15's question on a GPU: with the paper's networks (ResNet-9, ngf/ndf 64) at
# 64x64, does the adversarial game start, and does L1's ceiling rise above the cpu
# networks' 0.83? Target ratios 0 and 1, seed 0; about 6 minutes on one H100.
#
#   bash experiments/convergence/gpu.sh DATA_DIR OUT_DIR
#
# DATA_DIR holds the dataset's splits.npz (jax-translate data --size 64 --data-dir DATA_DIR
# --export, on a CPU) and, optionally, the classifier cache beside it. On a leased GPU:
# bash experiments/gpu/run.sh prepare on a CPU, carry experiments/gpu/carry, and there
#   python3 experiments/gpu/data.py unpack experiments/gpu/carry/data-64.npz --data-dir runs/gpu/data
# (tensorboardX: pip install --no-index --no-deps --target /tmp/site experiments/gpu/carry/wheels/*.whl
# and add /tmp/site to PYTHONPATH), then DATA_DIR is runs/gpu/data. The short-lease script
# (experiments/gpu/run.sh) runs the known-answer search and the study instead. Writes OUT_DIR/<method>.csv (after every point), <method>.png and log.txt.
# Each method stops adding points after its budget (seconds of its own wall time).
# Measured on one H100 (jax 0.11.2): cyclegan's first point (2,000 steps of 2 members,
# compile included) at 146 s, so its 120 s budget stopped it there; condgan reached 4,000
# steps in 90 s and l1 2,000 in 36 s. Give cyclegan more (PLAN=...) on a longer lease.
set -uo pipefail
cd "$(dirname "$0")/../.."
data=${1:?usage: gpu.sh DATA_DIR OUT_DIR}
out=${2:?usage: gpu.sh DATA_DIR OUT_DIR}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
# One line per method: steps, points, budget_s, and a hard timeout in seconds.
plan=${PLAN:-"cyclegan 10000 5 120 200
condgan 8000 4 60 110
l1 4000 2 30 75"}
while read -r method steps points budget limit; do
  timeout "$limit" $py experiments/convergence/run.py --model paper --ratios 0,1 \
      --steps "$steps" --points "$points" --methods "$method" --member-axis loop \
      --budget-s "$budget" --data-dir "$data" --out "/tmp/convergence_$method" 2>&1 \
    | grep --line-buffered -v '^\s*$' | tee -a "$out/log.txt"
  cp "/tmp/convergence_$method/convergence.csv" "$out/$method.csv" 2>/dev/null
  cp "/tmp/convergence_$method/convergence.png" "$out/$method.png" 2>/dev/null
done <<< "$plan"
