#!/usr/bin/env bash
# One entry point for a ~15-minute GPU lease: experiments/gpu/run.py (its --help says all).
#   bash experiments/gpu/run.sh prepare          # on a CPU: the data and wheels to carry
#   bash experiments/gpu/run.sh [speed known study] [--pack DIR]   # on the GPU
#   bash experiments/gpu/run.sh --dry-run        # on a CPU: every part at the tiny preset
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/run.py" "$@"
