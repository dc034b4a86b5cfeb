#!/usr/bin/env bash
# The GPU check: about 10 minutes on a fresh GPU machine holding this repository. Needs no data download.
#
#   bash scripts/gpu_check.sh                 # results under $OUT if set, else ./gpu_results
#   PYTHON=python3 bash scripts/gpu_check.sh  # an interpreter that already has the requirements: no venv
#
# Stages, each under `timeout` (a stage that fails or runs out of time does not stop the next ones):
#   venv       python3 -m venv .venv + the requirements + this package (skipped when .venv already imports
#              TensorFlow, or with $PYTHON); on a machine with nvidia-smi also TensorFlow's CUDA wheels,
#              at the version requirements.txt pins.
#   gpu        nvidia-smi, and the GPUs TensorFlow sees.
#   bench_step tools/bench_step.py: every arch x size at its preset's width and batch, float32, bfloat16 and auto,
#              plus the float32 and bfloat16 matmul rates (its files are rewritten after each row: a timeout
#              keeps the rows it finished).
#   wang_rep   Wang et al.'s CIFAR-10 settings (rep loss, full width, 32 px, batch 64) on the built-in shapes
#              data: 500 steps with --mixed_precision, timed.
# At the end one table: stage, exit code (124 = timed out), seconds, result.

set -u
cd "$(dirname "$0")/.."

results="${OUT:-$PWD/gpu_results}"
mkdir -p "$results"
venv_seconds="${VENV_SECONDS:-200}"
bench_seconds="${BENCH_SECONDS:-270}"
wang_seconds="${WANG_SECONDS:-120}"
py="${PYTHON:-.venv/bin/python}"
table=("| stage | exit code | seconds | result |" "|---|---|---|---|")

# stage NAME LIMIT COMMAND...: runs COMMAND under `timeout LIMIT`, its output shown and kept in NAME.log.
stage() {
  local name=$1 limit=$2
  shift 2
  echo "=== $name (at most ${limit} s): $*"
  local start=$SECONDS
  timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$results/$name.log"
  last_rc=${PIPESTATUS[0]}
  last_seconds=$((SECONDS - start))
}

record() {  # record NAME RESULT: one row of the final table, for the stage just run
  table+=("| $1 | $last_rc | $last_seconds | $2 |")
}

# The venv. The plain tensorflow wheel finds no GPU without CUDA libraries on the system; the [and-cuda]
# extra brings them as wheels.
tf_pin=$(sed -n 's/^tensorflow\(==[^ #]*\).*/\1/p' requirements.txt)
cuda_extra=""
if command -v nvidia-smi >/dev/null; then
  cuda_extra="&& .venv/bin/pip install -q 'tensorflow[and-cuda]$tf_pin'"
fi
if [ -n "${PYTHON:-}" ] || .venv/bin/python -c "import tensorflow" 2>/dev/null; then
  last_rc=0 last_seconds=0
  record venv "reused: $py"
else
  stage venv "$venv_seconds" bash -c \
    "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt -e . $cuda_extra"
  record venv "new .venv"
fi

stage gpu 60 bash -c "nvidia-smi; $py -c \"import tensorflow as tf; print('TensorFlow', tf.__version__, \
'GPUs:', tf.config.list_physical_devices('GPU'))\""
gpu_name=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
record gpu "${gpu_name:-no GPU found by nvidia-smi}; TensorFlow: $(grep -o "GPUs:.*" "$results/gpu.log" | tail -1)"

stage bench_step "$bench_seconds" "$py" -m tools.bench_step --precisions=float32,bfloat16,auto --warmup_steps=3 \
  --steps=20 --inception --matmul_size=8192 \
  --output_json="$results/bench_step.json" --output_md="$results/bench_step.md"
rows=$(grep -c '^| [a-z0-9_]* | [0-9]' "$results/bench_step.md" 2>/dev/null)
record bench_step "${rows:-0} rows in bench_step.md / .json"

# A fresh run directory: an old one would resume at its last step and time nothing.
rm -rf "$results/wang_rep"
stage wang_rep "$wang_seconds" "$py" main.py --dataset=shapes --loss=rep --width=1 --batch_size=64 --steps=500 \
  --mixed_precision --eval_every=0 --log_every=100 --sample_every=500 --checkpoint_every=500 \
  --workdir="$results/wang_rep"
rate=$(grep -o '[0-9.]* steps/s' "$results/wang_rep.log" | tail -1)
if [ "$last_rc" = 0 ]; then
  record wang_rep "500 steps in bfloat16, ${rate:-no rate logged} over the last 100 (seconds include start-up)"
else
  record wang_rep "did not finish (last rate logged: ${rate:-none}); see wang_rep.log"
fi

echo
echo "Results in $results:"
printf '%s\n' "${table[@]}" | tee "$results/summary.md"
