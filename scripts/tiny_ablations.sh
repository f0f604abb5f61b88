#!/usr/bin/env bash
# The paper's ablations in miniature (Tables 4, 5, 6) on CPU: trains every tiny variant from the tiny
# experiment's run folders, evaluates each on samples_group{A,B,C}, prints the tables.
#
#   bash scripts/tiny_experiment.sh      # first: runs/tiny/<stage> and models/tiny
#   bash scripts/tiny_ablations.sh       # then: runs/ablations/<variant>/<group>, models/abl_*, the tables
#
# Re-running resumes: finished training stages are skipped, finished evaluations are not redone.
# Variants (rar/eval/paper_tables.py lists the rows). As the tiny model, every UIR is taught on the
# true degradation text (condition=text) and runs with the LQA and text adapter of a cond_align run:
#   noisy                        abl_noisy_flow uir (noise start, z_lq concatenated)
#   iterative, non_iterative     joint (UIR only) with K = 4 / K = 1 on top of the tiny uir run
#   noisy_iterative, noisy_non_iterative   the same on top of the noisy uir run
#   pixel_lqa                    abl_pixel_lqa cond_align (the LQA reads decoded pixels) with the tiny UIR
#   text_pixel, text_latent      the tiny UIR with the text encoders, method=naive / method=text_latent
#   sd15                         abl_sd15_tiny cond_align + uir (diffusion UNet, DDIM)
#   rounds_1..4, stop_4          models/tiny with stop=fixed 1-4 rounds, and the stop rule up to 4
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
TINY=${TINY:-runs/tiny}
ROOT=${ROOT:-runs/ablations}
export HF_HUB_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled}
[ -d "$TINY/uir/model" ] || { echo "error: $TINY/uir/model missing: run scripts/tiny_experiment.sh first" >&2; exit 2; }
common=(tiny_dir=$TINY/pretrained autoencoder.pretrained=$TINY/autoencoder/model resume=true trainer.progress=false)

train() {  # name stage init_from|- [overrides...]; resume=true skips a finished run, continues a cut one
  local name=$1 stage=$2 init=$3; shift 3
  [ "$init" = - ] || set -- "init_from=$init" "$@"
  $PY scripts/train.py stage=$stage name=$name hydra.run.dir=runs/$name/$stage "${common[@]}" "$@"
}
export_model() {  # run_dir out [overrides...]
  local run=$1 out=$2; shift 2
  [ -d "$out" ] || $PY scripts/export_pipeline.py run_dir=$run out=$out "$@"
}
evaluate() {  # variant [eval overrides...]
  local variant=$1; shift
  for g in A B C; do
    [ -f "$ROOT/$variant/$g/summary.csv" ] && continue
    $PY scripts/eval.py benchmark=samples_group$g 'metrics=[psnr,ssim]' progress=false \
        hydra.run.dir=$ROOT/$variant/$g method.name=$variant "$@"
  done
}

# Table 4 / 5: training-side variants
train abl_noisy_flow uir - experiment=abl_noisy_flow condition=text
train abl_iterative joint "[$TINY/cond_align,$TINY/uir]" experiment=tiny joint_lqa=frozen
train abl_non_iterative joint "[$TINY/cond_align,$TINY/uir]" experiment=abl_non_iterative joint_lqa=frozen
train abl_noisy_flow joint "[$TINY/cond_align,runs/abl_noisy_flow/uir]" experiment=abl_noisy_flow joint_lqa=frozen
train abl_noisy_flow_k1 joint "[$TINY/cond_align,runs/abl_noisy_flow/uir]" experiment=abl_noisy_flow iterative=false \
    joint_lqa=frozen
train abl_pixel_lqa cond_align $TINY/lqa_finetune experiment=abl_pixel_lqa
train abl_sd15_tiny cond_align $TINY/lqa_finetune experiment=abl_sd15_tiny
train abl_sd15_tiny uir - experiment=abl_sd15_tiny condition=text

export_model runs/abl_noisy_flow/uir models/abl_noisy_flow lqa_from=$TINY/cond_align adapter_from=$TINY/cond_align
export_model runs/abl_iterative/joint models/abl_iterative
export_model runs/abl_non_iterative/joint models/abl_non_iterative
export_model runs/abl_noisy_flow/joint models/abl_noisy_flow_iterative
export_model runs/abl_noisy_flow_k1/joint models/abl_noisy_flow_k1
export_model $TINY/uir models/abl_pixel_lqa lqa_from=runs/abl_pixel_lqa/cond_align \
    adapter_from=runs/abl_pixel_lqa/cond_align
export_model $TINY/uir models/abl_text_condition lqa_from=$TINY/lqa_finetune
export_model runs/abl_sd15_tiny/uir models/abl_sd15_tiny lqa_from=runs/abl_sd15_tiny/cond_align \
    adapter_from=runs/abl_sd15_tiny/cond_align

evaluate identity method=identity
evaluate rar method=rar method.target.path=models/tiny
evaluate noisy method=rar method.target.path=models/abl_noisy_flow
evaluate iterative method=rar method.target.path=models/abl_iterative
evaluate non_iterative method=rar method.target.path=models/abl_non_iterative
evaluate noisy_iterative method=rar method.target.path=models/abl_noisy_flow_iterative
evaluate noisy_non_iterative method=rar method.target.path=models/abl_noisy_flow_k1
evaluate pixel_lqa method=rar method.target.path=models/abl_pixel_lqa
evaluate text_pixel method=naive method.target.path=models/abl_text_condition
evaluate text_latent method=text_latent method.target.path=models/abl_text_condition
evaluate sd15 method=rar method.target.path=models/abl_sd15_tiny
# Table 6: rounds on the committed model
for k in 1 2 3 4; do evaluate rounds_$k method=rar +method.target.max_rounds=$k +method.target.stop=fixed; done
evaluate stop_4 method=rar +method.target.max_rounds=4 +method.target.stop=compare

$PY scripts/paper_tables.py "$ROOT" | tee "$ROOT/tables.md"
