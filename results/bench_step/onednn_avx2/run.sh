#!/bin/bash
# oneDNN on and off on an AVX2-only CPU, interleaved: each configuration with TF_ENABLE_ONEDNN_OPTS=0 then 1.
# Usage: bash results/bench_step/onednn_avx2/run.sh  (from the repository root; appends to o0.* and o1.*)
set -u
D=results/bench_step/onednn_avx2
W=${INCEPTION_WEIGHTS:-../shared/assets/inception/fid_inception_v3_2015_12_05.npz}
run() {  # run NAME ARGS...: both settings, one process each
  for v in 0 1; do
    local app=""; [ -f "$D/o$v.json" ] && app="--append"
    TF_ENABLE_ONEDNN_OPTS=$v .venv/bin/python -m tools.bench_step "${@}" --output_md=$D/o$v.md \
      --output_json=$D/o$v.json $app > $D/log_o$v.txt 2>&1 || echo "failed: $v $*"
  done
}
run --archs=dcgan --sizes=32 --width=0.25 --batch_size=32 --precisions=float32 --xla=off,on --warmup_steps=3 --steps=15
run --archs=dcgan,resnet,li --width=0.25 --sizes=32 --precisions=float32 --xla=off,on --warmup_steps=2 --steps=4
run --archs=dcgan5,sngan --width=0.25 --sizes=32 --precisions=float32 --xla=off --warmup_steps=1 --steps=3
run --archs=dcgan --sizes=32 --precisions=float32 --warmup_steps=1 --steps=3
run --archs= --inception --inception_weights=$W --inception_images=200
# oneDNN on only: Wang's full width under XLA, and bfloat16 (auto keeps it off on AVX2: does oneDNN change that?)
one() { TF_ENABLE_ONEDNN_OPTS=1 .venv/bin/python -m tools.bench_step "${@}" --output_md=$D/o1.md \
          --output_json=$D/o1.json --append > $D/log_o1.txt 2>&1 || echo "failed: 1 $*"; }
one --archs=dcgan --sizes=32 --precisions=float32 --xla=on --warmup_steps=1 --steps=3
one --archs=dcgan --sizes=32 --width=0.25 --batch_size=32 --precisions=bfloat16 --xla=off --warmup_steps=2 --steps=5
# oneDNN off: Wang's full width under XLA (the old --jit_compile=auto there)
TF_ENABLE_ONEDNN_OPTS=0 .venv/bin/python -m tools.bench_step --archs=dcgan --sizes=32 --precisions=float32 --xla=on \
  --warmup_steps=1 --steps=3 --output_md=$D/o0.md --output_json=$D/o0.json --append > $D/log_o0.txt 2>&1 || echo "failed: 0 wang xla"
