#!/usr/bin/env bash
# Issue 9's GPU run in one prepared command, for a session lent a GPU machine (the device tool):
# the LM products on the GPU, checked against each other and against central differences, timed
# and measured against one gradient and against curvlinops, at two sizes:
#   1. the demo byte LM in float64 (products checked to float64 rounding on the GPU);
#   2. a GPT-2-small configuration (12 layers, width 768, 12 heads, vocabulary 50257: 124M
#      parameters), random init trained briefly on the standard library's bytes, float32.
# That machine has PyTorch and transformers but neither ridgelens nor curvlinops, and no network:
# ridgelens runs from src/, curvlinops from wheels carried in .whl (make gpu-wheels, here, first).
#
#   make gpu-wheels                                   # on this machine, once
#   run(command="bash benchmarks/gpu_lm.sh", carry=[".whl"], timeout_s=560)
#
# Every log is written to $OUT as it goes, so a run stopped by its time limit still returns what
# it measured. Sizes are chosen to finish in about 6 minutes on one H200. The environment can
# change them: DEMO (flags of the demo LM's run), STEPS, TOKENS, EIG_K and GPT2 (the model's
# flags) for the GPT-2 run, DEVICE (default cuda). A dry run of the whole script on a CPU, with a small GPT-2 (about 5 minutes: memory from 3 children per row):
#   PATH=$PWD/.venv-bench/bin:$PATH DEVICE=cpu DEMO="--repeats 3 --eig-k 4" STEPS=20 TOKENS=512 EIG_K=4 \
#     GPT2="--layers 2 --width 64 --heads 2 --vocab 1000 --context 32" bash benchmarks/gpu_lm.sh
set -u
OUT=${OUT:-/tmp/ridgelens-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "transformers", transformers.__version__)'
    python3 -c 'import curvlinops; print("curvlinops importable")' || echo "curvlinops missing: its rows are skipped"
} 2>&1 | tee "$OUT/machine.txt"

# shellcheck disable=SC2086  # DEMO and GPT2 hold several flags
# 1. The demo LM (the `demo --lm` setting), float64 on the GPU: about a minute.
timeout 120 python3 benchmarks/bench_lm.py --device "${DEVICE:-cuda}" --dtype float64 ${DEMO:---repeats 21 --eig-k 20} \
    2>&1 | tee "$OUT/demo_lm_cuda.txt"

# 2. GPT-2 small, float32: training, checks, timing, memory, then the top-20 eigenpairs.
timeout 360 python3 benchmarks/bench_lm.py --device "${DEVICE:-cuda}" --dtype float32 --arch gpt2 \
    ${GPT2:---layers 12 --width 768 --heads 12 --vocab 50257 --context 256} --tokens "${TOKENS:-4096}" \
    --steps "${STEPS:-300}" --train-batch 16 --repeats 11 --eig-k "${EIG_K:-20}" 2>&1 | tee "$OUT/gpt2_small_cuda.txt"
echo "done: $(date -u)" | tee -a "$OUT/machine.txt"
