#!/usr/bin/env bash
# The GPU measurements of docs/performance.md (issue 18), random weights, one H100/H200:
#   bash scripts/gpu_bench.sh            # writes $OUT/<name>/bench.json (OUT defaults to runs/gpu_bench)
# sd35_large RAR at 512x512, 3 rounds x 10 Euler steps, LQA answers capped at 8 tokens, batch 1 and 8,
# eager vs compiled UIR vs static/compiled decode; then sd35_medium training (uir, joint) with and
# without regional compilation and the largest batch per stage.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-runs/gpu_bench}
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled
common=(device=cuda resolution=512 warmup=2 repeats=3)
$PY scripts/bench.py experiment=sd35_large "${common[@]}" dtype=bfloat16 'parts=[inference]' \
    inference.loop.steps_per_round=10 inference.loop.stop=fixed inference.max_new_tokens=8 \
    'inference.batch_sizes=[1,8]' inference.fast.merge_lora=true \
    '+inference.variants={compiled_uir: {compile_uir: true}, static_decode: {compile_uir: true, static_decode: true}, compiled_decode: {compile_uir: true, static_decode: true, compile_decode: true}}' \
    +out_dir="$OUT/inference_sd35_large"
$PY scripts/bench.py experiment=sd35_medium "${common[@]}" 'parts=[training]' 'training.stages=[uir,joint]' \
    training.mixed_precision=bf16 training.fused_adamw=true training.batch=8 training.gradient_checkpointing=true \
    +out_dir="$OUT/training_sd35_medium"
$PY scripts/bench.py experiment=sd35_medium "${common[@]}" 'parts=[training]' 'training.stages=[uir,joint]' \
    training.mixed_precision=bf16 training.fused_adamw=true training.batch=8 training.gradient_checkpointing=true \
    training.compile_blocks=true training.find_max_batch=true \
    compare_to="$OUT/training_sd35_medium/bench.json" +out_dir="$OUT/training_sd35_medium_compiled"
