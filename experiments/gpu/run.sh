#!/usr/bin/env bash
# One entry point for a ~15-minute GPU lease (issue 29): three parts, each under its own cap,
# each writing results as it goes.
#
#   speed  (cap SPEED_CAP_S, default 150 s): the paper's networks at 256x128, cyclegan N=11,
#          vmap/patches and the loop in fp32 and bf16: member-steps/s, counted FLOPs per
#          member-step (runtime/flops.py), XLA's cost analysis and the top ops of a traced
#          call (benchmarks/speed_profile.py) -> benchmarks/results/gpu-<card>-paper-profile.*
#   known  (cap KNOWN_CAP_S, default 240 s): the known-answer regime search
#          (experiments/known_answer/run.py, --member-axis vmap) on the identity task
#          (flair -> flair, ratio 0.5) and on flair -> t1 (ratio 1) at 64x64, the runs,
#          regimes and grids below; every run (a task, a method, a regime and its grid as
#          members of one sweep; or an L1 reference) is a process of its own, side by side
#          on the GPU -> experiments/gpu/results/known_answer/{results.csv,table.md,log.txt}
#   study  (cap STUDY_CAP_S, default 270 s): jax-translate reproduce --preset gpu
#          -> experiments/gpu_study/results/
#
# On a CPU machine with the package installed (pip install -e ".[test]"), once:
#   bash experiments/gpu/run.sh prepare [--data-dir DIR] [--dtype float16|uint8]
# builds (or reuses) the gpu preset's 64x64 dataset and writes experiments/gpu/carry/ (git
# ignores it): data-64.npz (Flair and T1 of every split, images float16, masks as bits,
# ~25 MiB) and the wheels the GPU image lacks (tensorboardX). It prints the `run` calls.
#
# On a GPU machine, from the repository root (no install: PYTHONPATH; nothing downloaded;
# no tensorflow-datasets or nilearn needed), with experiments/gpu/carry/ copied over:
#   bash experiments/gpu/run.sh                     # all three parts, ~11 min
#   bash experiments/gpu/run.sh speed known         # or some of them, in this order
# With the device `run` tool (one command <= 10 min, so two calls on one warm machine):
#   run(command='bash experiments/gpu/run.sh --pack "$OUT" speed known', timeout_s=450,
#       carry=["experiments/gpu/carry"])
#   run(command='bash experiments/gpu/run.sh --pack "$OUT" study', timeout_s=330,
#       carry=["experiments/gpu/carry"])
# (`bash experiments/gpu/run.sh plan` prints these for the caps in force.) --pack DIR puts
# each part's results into DIR/<part>.tar.gz (paths from the repository root) and the log
# into DIR/log-<parts>.txt; the end of the output says what to untar and commit.
#
# On a CPU, the dry run (a test in CI, tests/test_gpu_script.py): every part at the tiny
# preset with a few steps, against a synthetic export it packs and unpacks itself, with
# tensorflow-datasets, nilearn and nibabel blocked; nothing is written into the repository:
#   bash experiments/gpu/run.sh --dry-run [--workdir DIR] [speed known study]
#
# Exit status: 0 when every part ran (a part stopped at its cap on a GPU counts as run: its
# results so far are kept; in the dry run it is a failure), else 1; bad usage 2.
set -uo pipefail

# ---- what the lead sets (environment variables override) ----------------------------------
SPEED_CAP_S=${SPEED_CAP_S:-150}
KNOWN_CAP_S=${KNOWN_CAP_S:-240}
STUDY_CAP_S=${STUDY_CAP_S:-270}
# Part speed: the rows, in order (AXIS/CONV/PRECISION), and the model (issue 11's paper-256).
SPEED_ROWS=${SPEED_ROWS:-vmap/patches/fp32,vmap/patches/bf16,loop/xla/bf16,loop/xla/fp32}
SPEED_FLAGS=${SPEED_FLAGS:---preset paper --size 256x128 --upscale 1 --upsample resize --dropout 0 --members 11 --steps-per-call 10}
# Part known: the grid crossed into every regime (FIELD=V1,V2, space-separated), seeds, regimes
# (one NAME=JSON a line; a regime's own "grid": {"FIELD": [values]} is crossed with KA_GRID) and
# tasks (SOURCE TARGET RATIOS, one a line).
KA_GRID=${KA_GRID-}
KA_SEEDS=${KA_SEEDS:-2}
KA_REGIMES=${KA_REGIMES:-'base={}
id-r1={"grid": {"r1_weight": [100, 1000]}}
id-d1-r1={"model": {"n_disc_layers": 1}, "grid": {"r1_weight": [100, 1000]}}
t1-dpool2-noid={"model": {"d_pool": 2}, "lambda_identity": 0, "grid": {"gan_weight": [1, 3]}}'}
KA_TASKS=${KA_TASKS:-'flair flair 0.5
flair t1 1'}
# Or the processes one by one, each "SOURCE TARGET RATIOS METHOD REGIME" a line (METHOD l1: the
# L1 reference alone, which regimes that change only the discriminator share); when set, it
# replaces the cross product of KA_TASKS, KA_REGIMES and (cyclegan, l1). The default is the
# second lease of 2026-12-04 (experiments/known_answer/README.md): the identity task with R1
# on the standard and on a 1-layer PatchGAN, and flair -> t1 with a 2x2-pooled one and no
# identity term; its 12,000 steps took KNOWN_CAP_S=420 KA_STEPS=12000 KA_POINTS=6.
KA_RUNS=${KA_RUNS-'flair flair 0.5 cyclegan id-r1
flair flair 0.5 cyclegan id-d1-r1
flair flair 0.5 l1 base
flair t1 1 cyclegan t1-dpool2-noid'}
KA_PRESET=${KA_PRESET:-cpu}
KA_POINTS=${KA_POINTS:-3}
# Steps: 6,000 fit the default runs in 240 s on one H200 (measured: 2,000 steps at ~115 s,
# compiles included, then ~48 steps/s a process). "auto" sizes them to the cap: (cap - KA_OVERHEAD_S) x KA_RATE / (the largest
# sweep's members x KA_SLOWDOWN), a multiple of 50 x points. KA_RATE: the cpu-preset cyclegan
# vmapped at N=11 ran ~1000 member-steps/s on one H200; KA_OVERHEAD_S: two compiles, the data
# and the scoring per process (a guess: the log has each row's wall time); KA_SLOWDOWN: the
# n_down=1 regime's larger maps and the processes sharing the GPU (a guess).
KA_STEPS=${KA_STEPS:-6000}
KA_RATE=${KA_RATE:-1000}
KA_OVERHEAD_S=${KA_OVERHEAD_S:-60}
KA_SLOWDOWN=${KA_SLOWDOWN:-3}
# Part study: reproduce's preset and any other flags (e.g. --methods l1,condgan).
STUDY_PRESET=${STUDY_PRESET:-gpu}
STUDY_FLAGS=${STUDY_FLAGS:-}
# Modules the GPU side imports; those the device image lacks travel as wheels.
GPU_MODULES="jax flax optax orbax.checkpoint numpy scipy matplotlib tqdm tensorboardX"
GPU_WHEELS="tensorboardX"
# -------------------------------------------------------------------------------------------

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
CARRY=${GPU_CARRY:-experiments/gpu/carry}  # what the run tool carries (tests point it elsewhere)
ALL_PARTS=(speed known study)

die() { echo "error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

MODE=gpu PACK="" WORK="" SRC_DATA="" DTYPE=float16 PARTS=()
case "${1:-}" in
  prepare) MODE=prepare; shift ;;
  plan) MODE=plan; shift ;;
esac
while (( $# )); do
  case "$1" in
    --dry-run) [[ $MODE == gpu ]] || die "--dry-run does not go with $MODE"; MODE=dry ;;
    --pack) [[ $# -ge 2 && -n "$2" ]] || die "--pack needs a folder"; PACK=$2; shift ;;
    --workdir) [[ $# -ge 2 && -n "$2" ]] || die "--workdir needs a folder"; WORK=$2; shift ;;
    --data-dir) [[ $# -ge 2 && -n "$2" ]] || die "--data-dir needs a folder"; SRC_DATA=$2; shift ;;
    --dtype) [[ $# -ge 2 ]] || die "--dtype needs float16 or uint8"; DTYPE=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    speed|known|study) PARTS+=("$1") ;;
    *) die "unknown argument '$1' (bash experiments/gpu/run.sh --help)" ;;
  esac
  shift
done
for cap in SPEED_CAP_S KNOWN_CAP_S STUDY_CAP_S KA_SEEDS KA_POINTS KA_RATE KA_OVERHEAD_S KA_SLOWDOWN; do
  [[ ${!cap} =~ ^[1-9][0-9]*$ ]] || die "$cap must be a positive whole number, got '${!cap}'"
done
[[ $KA_STEPS == auto || $KA_STEPS =~ ^[1-9][0-9]*$ ]] || die "KA_STEPS must be auto or a number"
[[ $DTYPE == float16 || $DTYPE == uint8 ]] || die "--dtype must be float16 or uint8"
if [[ $MODE == prepare || $MODE == plan ]]; then
  (( ${#PARTS[@]} == 0 )) && [[ -z $PACK && -z $WORK ]] || die "$MODE takes --data-dir and --dtype only"
else
  [[ -z $SRC_DATA ]] || die "--data-dir goes with prepare (the GPU side reads $CARRY)"
fi
(( ${#PARTS[@]} )) || PARTS=("${ALL_PARTS[@]}")

# The run tool's calls for the caps in force (each call: its parts' caps + 60 s of setup).
print_plan() {
  local t1=$(( SPEED_CAP_S + KNOWN_CAP_S + 60 )) t2=$(( STUDY_CAP_S + 60 ))
  echo "the device run tool (one warm H200; at most ~$(( (t1 + t2) / 60 + 2 )) min of the lease, its start included):"
  echo "  run(command='bash experiments/gpu/run.sh --pack \"\$OUT\" speed known', timeout_s=$t1, carry=[\"$CARRY\"])"
  echo "  run(command='bash experiments/gpu/run.sh --pack \"\$OUT\" study', timeout_s=$t2, carry=[\"$CARRY\"])"
  echo "then give_back; on any GPU machine: bash experiments/gpu/run.sh"
}

if [[ $MODE == plan ]]; then print_plan; exit 0; fi

if [[ $MODE == prepare ]]; then
  mkdir -p "$CARRY/wheels"
  $PY experiments/gpu/data.py pack --preset gpu --dtype "$DTYPE" \
      ${SRC_DATA:+--data-dir "$SRC_DATA"} --out "$CARRY/data-64.npz" || exit 1
  for name in $GPU_WHEELS; do
    version=$($PY -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null) \
      || die "$name is not installed here: pip install -e '.[test]' first"
    if ! ls "$CARRY/wheels/" | grep -qi "^${name}-${version}-"; then
      $PY -m pip download -q --no-deps --only-binary=:all: "$name==$version" -d "$CARRY/wheels" \
        || die "could not download the $name $version wheel into $CARRY/wheels"
    fi
  done
  carry_kib=$(du -sk "$CARRY" | cut -f1)
  tree_kib=$(( $(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) / 1024 ))
  echo "carry: $CARRY $(( carry_kib / 1024 )) MiB; working tree $(( tree_kib / 1024 )) MiB; limit 64 MiB together"
  (( carry_kib + tree_kib < 60 * 1024 )) || die "the carry and the tree pass 60 MiB; use --dtype uint8"
  print_plan
  exit 0
fi

# ---- the GPU side (and the dry run) --------------------------------------------------------
if [[ $MODE == dry ]]; then
  WORK=${WORK:-$(mktemp -d)}
  RESULTS="$WORK/results"   # the repository's layout, outside it
  SPEED_CAP_S=${DRY_CAP_S:-300} KNOWN_CAP_S=${DRY_CAP_S:-300} STUDY_CAP_S=${DRY_CAP_S:-300}
  SPEED_ROWS=${DRY_SPEED_ROWS:-vmap/xla/bf16}  # one row: the script, not the engine, is tested
  SPEED_FLAGS="--preset tiny --size 64 --members 2 --steps-per-call 1 --min-seconds 0 --row-estimate-s 1"
  KA_RUNS=${DRY_KA_RUNS-} KA_GRID=${DRY_KA_GRID-r1_weight=0,10} KA_SEEDS=1 KA_REGIMES=${DRY_KA_REGIMES:-'base={}'} KA_PRESET=tiny KA_POINTS=${DRY_KA_POINTS:-1} KA_STEPS=2
  KA_TASKS='flair t1 0.5,1'  # one task: a process pair per task, and the CPU has 2 cores
  STUDY_PRESET=tiny STUDY_FLAGS="--methods l1"
  DATA_PRESET=tiny EXPORT="$WORK/carry/data-tiny.npz"
  # XLA's CPU optimisations cost more than they save on tiny programs (tests/conftest.py).
  export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}
else
  WORK=${WORK:-$ROOT/runs/gpu}
  RESULTS="$ROOT"
  DATA_PRESET=$STUDY_PRESET EXPORT="$CARRY/data-64.npz"
fi
mkdir -p "$WORK" || die "cannot create $WORK"
WORK="$(cd "$WORK" && pwd)"
DATA="$WORK/data"
if [[ -n $PACK ]]; then
  mkdir -p "$PACK" || die "cannot create $PACK"
  exec > >(tee -a "$PACK/log-$(IFS=-; echo "${PARTS[*]}").txt") 2>&1
  TEE_PID=$!
  trap 'exec >&- 2>&-; wait "$TEE_PID"' EXIT  # the log is whole before the run tool takes it
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JAX_TRANSLATE_DATA_DIR="$DATA"
echo "gpu/run.sh: mode $MODE, parts ${PARTS[*]}, workdir $WORK, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

needs_data=0
for part in "${PARTS[@]}"; do [[ $part == speed ]] || needs_data=1; done

if [[ $MODE == dry ]]; then
  # What the GPU image lacks: tensorflow-datasets, nilearn (and nibabel) fail to import.
  mkdir -p "$WORK/block"
  for mod in tensorflow_datasets nilearn nibabel; do
    echo "raise ImportError('$mod is blocked by the dry run of experiments/gpu/run.sh')" > "$WORK/block/$mod.py"
  done
  if (( needs_data )); then  # prepare, on the CPU side: a synthetic export, packed
    $PY experiments/gpu/data.py synthetic --preset tiny --data-dir "$WORK/build" || exit 1
    $PY experiments/gpu/data.py pack --preset tiny --data-dir "$WORK/build" --out "$EXPORT" || exit 1
  fi
  export PYTHONPATH="$WORK/block:$PYTHONPATH"
else
  card=$($PY - <<'EOF'
import re, jax
d = jax.devices()[0]
print(re.sub(r"[^A-Za-z0-9]+", "-", d.device_kind).strip("-").lower() if d.platform == "gpu" else "")
EOF
  )
  [[ -n $card ]] || die "no GPU: JAX sees $($PY -c 'import jax; print(jax.default_backend())' 2>&1 | tail -1); on a CPU run: bash experiments/gpu/run.sh --dry-run"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  missing=$($PY - $GPU_MODULES <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m.split(".")[0]) is None))
EOF
  )
  if [[ -n $missing ]]; then
    ls "$CARRY"/wheels/*.whl >/dev/null 2>&1 || die "missing python modules: $missing (and no wheels in $CARRY/wheels: run 'bash experiments/gpu/run.sh prepare' on a CPU and carry $CARRY)"
    $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$WORK/site" "$CARRY"/wheels/*.whl \
      || die "could not install the wheels of $CARRY/wheels"
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
  fi
fi
if (( needs_data )); then
  [[ -f $EXPORT ]] || die "no $EXPORT: run 'bash experiments/gpu/run.sh prepare' on a CPU machine and carry $CARRY"
  stamp="$WORK/.unpacked-$(basename "$EXPORT")"
  if [[ ! -f $stamp || $EXPORT -nt $stamp ]]; then
    $PY experiments/gpu/data.py unpack "$EXPORT" --data-dir "$DATA" --preset "$DATA_PRESET" || exit 1
    touch "$stamp"
  fi
fi

# ---- the parts -----------------------------------------------------------------------------
declare -A STATUS WALL
WRITTEN=()

part_speed() {
  local name=${card:-cpu}
  local out="$RESULTS/benchmarks/results/gpu-$name-paper-profile.json"
  [[ $MODE == dry ]] && out="$RESULTS/benchmarks/results/dry-run-profile.json"
  # no row starts that would end past the cap (a row: ~60 s on an H100 at this size)
  timeout -k 15 "$SPEED_CAP_S" $PY benchmarks/speed_profile.py $SPEED_FLAGS --rows "$SPEED_ROWS" \
      --budget-s $(( SPEED_CAP_S > 30 ? SPEED_CAP_S - 10 : SPEED_CAP_S )) --machine "$name" --out "$out"
}

ka_members() {  # the largest sweep's members: grid points x ratios x seeds
  $PY - "$KA_GRID" "$KA_SEEDS" "$KA_TASKS" <<'EOF'
import math, sys
grid, seeds, tasks = sys.argv[1].split(), int(sys.argv[2]), sys.argv[3].splitlines()
points = math.prod(len(g.partition("=")[2].split(",")) for g in grid)
print(max(points * len(t.split()[2].split(",")) * seeds for t in tasks if t.strip()))
EOF
}

part_known() {
  local res="$RESULTS/experiments/gpu/results/known_answer" runs="$WORK/known_answer"
  mkdir -p "$res" "$runs"
  local steps=$KA_STEPS
  if [[ $steps == auto ]]; then
    local n quantum=$(( 50 * KA_POINTS ))
    n=$(ka_members) || return 1
    steps=$(( (KNOWN_CAP_S - KA_OVERHEAD_S) * KA_RATE / (n * KA_SLOWDOWN) / quantum * quantum ))
    (( steps >= quantum )) || steps=$quantum
    echo "known: $steps steps = ($KNOWN_CAP_S s cap - $KA_OVERHEAD_S s) x $KA_RATE member-steps/s / ($n members x $KA_SLOWDOWN), a multiple of $quantum"
  fi
  local grid=() pids=() tags=() g runs_list=$KA_RUNS
  for g in $KA_GRID; do grid+=(--grid "$g"); done
  if [[ -z $runs_list ]]; then  # every task x regime x (cyclegan, l1)
    local src tgt ratios regime
    while read -r src tgt ratios; do
      [[ -n ${src:-} ]] || continue
      while IFS= read -r regime; do
        [[ -n $regime ]] && runs_list+="$src $tgt $ratios cyclegan ${regime%%=*}"$'\n'"$src $tgt $ratios l1 ${regime%%=*}"$'\n'
      done <<< "$KA_REGIMES"
    done <<< "$KA_TASKS"
  fi
  : > "$res/log.txt"
  while read -r src tgt ratios methods rname; do
    [[ -n ${src:-} ]] || continue
    local regime
    regime=$(grep -m1 "^$rname=" <<< "$KA_REGIMES") || { echo "known: no regime '$rname' in KA_REGIMES"; return 2; }
    {
        local out="$runs/$src-$tgt/$rname/$methods" tag="$src->$tgt $rname $methods"
        local which=(--methods "$methods" --no-reference)
        [[ $methods == l1 ]] && which=(--methods "")  # the regime's L1 reference alone
        mkdir -p "$out"
        ( set -o pipefail
          XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -k 15 "$KNOWN_CAP_S" \
            $PY experiments/known_answer/run.py --out "$out" --source "$src" --target "$tgt" \
              --ratios "$ratios" --regime "$regime" "${grid[@]}" --seeds "$KA_SEEDS" \
              --steps "$steps" --points "$KA_POINTS" --preset "$KA_PRESET" \
              --member-axis vmap --data-dir "$DATA" "${which[@]}" 2>&1 \
            | sed -u "s|^|[$tag] |" | tee -a "$res/log.txt" ) &
        pids+=($!) tags+=("$tag")
    }
  done <<< "$runs_list"
  local i rc worst=0
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    (( rc == 0 )) && continue
    echo "known: [${tags[$i]}] exited $rc$( (( rc == 124 )) && echo ' (its cap)')"
    if (( rc != 124 )); then worst=1; elif (( worst == 0 )); then worst=124; fi
  done
  # one table of every process's rows (header once), and the harness's own verdicts
  local merged="$res/results.csv" f first=1
  : > "$merged"
  while IFS= read -r f; do
    if (( first )); then cat "$f" >> "$merged"; first=0; else tail -n +2 "$f" >> "$merged"; fi
  done < <(find "$runs" -name results.csv | sort)
  if (( first )); then echo "known: no rows were written"; rm -f "$merged"; return 1; fi
  echo "known: $(( $(wc -l < "$merged") - 1 )) rows in $merged"
  $PY experiments/known_answer/run.py --table --out "$res" > "$res/table.md" || return 1
  cat "$res/table.md"
  return $worst
}

part_study() {
  local res="$RESULTS/experiments/gpu_study/results" out="$WORK/study" rc start
  mkdir -p "$res"
  start=$(date +%s)
  # SIGINT at the cap: the sweep checkpoints and reproduce stops ("rerun to resume")
  timeout -s INT -k 30 "$STUDY_CAP_S" $PY -m jax_translate.cli reproduce --preset "$STUDY_PRESET" \
      --data-dir "$DATA" --out "$out" $STUDY_FLAGS 2>&1 | tee "$res/log.txt"
  rc=${PIPESTATUS[0]}
  local f m
  for f in results.csv results.json bias_curves.png flips.png; do
    [[ -f $out/$f ]] && cp "$out/$f" "$res/"
  done
  for m in "$out"/*/; do  # each method evaluated so far (the combined table comes at the end)
    m=$(basename "$m")
    [[ -f $out/$m/results.csv ]] && cp "$out/$m/results.csv" "$res/${m}_results.csv"
    [[ -f $out/$m/results.json ]] && cp "$out/$m/results.json" "$res/${m}_results.json"
    [[ -f $out/$m/examples.png ]] && cp "$out/$m/examples.png" "$res/examples_$m.png"
  done
  {
    echo "command: bash experiments/gpu/run.sh study (reproduce --preset $STUDY_PRESET $STUDY_FLAGS)"
    echo "exit: $rc$( (( rc == 124 )) && echo " (stopped at its cap, $STUDY_CAP_S s)")"
    echo "wall_seconds: $(( $(date +%s) - start ))"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    $PY -c "import jax; print('jax', jax.__version__, jax.devices())"
  } > "$res/run_info.txt"
  cat "$res/run_info.txt"
  return "$rc"
}

for part in "${ALL_PARTS[@]}"; do
  [[ " ${PARTS[*]} " == *" $part "* ]] || continue
  echo "=== part $part (cap ${part^^}_CAP_S) ==="
  touch "$WORK/.start-$part"; sleep 1  # files newer than this are the part's
  t0=$(date +%s)
  "part_$part"; rc=$?
  WALL[$part]=$(( $(date +%s) - t0 ))
  case $rc in
    0) STATUS[$part]="ok" ;;
    124) STATUS[$part]="stopped at its cap" ;;
    *) STATUS[$part]="failed (exit $rc)" ;;
  esac
  mapfile -t files < <(cd "$RESULTS" && find benchmarks/results experiments/gpu/results \
      experiments/gpu_study/results -type f -newer "$WORK/.start-$part" 2>/dev/null | sort)
  WRITTEN+=("${files[@]}")
  if [[ -n $PACK && ${#files[@]} -gt 0 ]]; then
    tar -czf "$PACK/$part.tar.gz" -C "$RESULTS" "${files[@]}" && echo "packed $PACK/$part.tar.gz"
  fi
  echo "=== part $part: ${STATUS[$part]} in ${WALL[$part]} s, ${#files[@]} files ==="
done

echo
echo "summary:"
failed=0
for part in "${ALL_PARTS[@]}"; do
  [[ -n ${STATUS[$part]:-} ]] || continue
  echo "  $part: ${STATUS[$part]} (${WALL[$part]} s)"
  [[ ${STATUS[$part]} == ok ]] && continue
  [[ $MODE == gpu && ${STATUS[$part]} == "stopped at its cap" ]] && continue
  failed=1
done
if (( ${#WRITTEN[@]} )); then
  echo "results written (under $RESULTS):"
  printf '  %s\n' "${WRITTEN[@]}"
  if [[ $MODE == gpu ]]; then
    [[ -n $PACK ]] && echo "back home: for f in FILES_AT/*.tar.gz; do tar -xzf \$f -C REPO; done  (FILES_AT: the run tool's files_at)"
    echo "to commit:"
    echo "  git add -- ${WRITTEN[*]}"
    echo "  git commit -m 'GPU lease: ${PARTS[*]}' -- ${WRITTEN[*]}"
  fi
fi
exit $failed
