#!/usr/bin/env bash
# The tiny model's quality bar (rar/eval/quality_bar.py) on one build of the sample benchmarks:
# RAR vs the input, vs 1 and 3 fixed rounds, vs the same restorer trained with condition=none (same
# budget, same LQA, same loop and calibration), the answers' labels, per combination.
#
#   bash scripts/tiny_experiment.sh            # first: runs/tiny/<stage>, models/tiny
#   bash scripts/tiny_quality.sh               # data/benchmarks/samples (seed 0) -> runs/quality/seed0
#   python scripts/prepare_data.py task=build build.seed=1 build.out=runs/benchmarks_seed1
#   BENCH=runs/benchmarks_seed1 OUT=runs/quality/seed1 bash scripts/tiny_quality.sh   # another seed
#
# Trains the condition=none control once (NONE=runs/tiny_none; EXTRA: overrides for its training, e.g.
# the data source of a variant's uir stage), resumable; finished evaluations are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
TINY=${TINY:-runs/tiny}
MODEL=${MODEL:-models/tiny}
BENCH=${BENCH:-data/benchmarks/samples}
OUT=${OUT:-runs/quality/seed0}
NONE=${NONE:-runs/tiny_none}
export HF_HUB_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled}
for need in cond_align/model uir/config.yaml; do
  [ -e "$TINY/$need" ] || { echo "error: $TINY/$need missing: run scripts/tiny_experiment.sh first" >&2; exit 2; }
done
GROUPS_SWEEP=benchmark=samples_groupA,samples_groupB,samples_groupC

# the control: the uir stage with condition=none, trained as the tiny experiment trained its uir stage
# (as many steps; the own-round and wrong-condition shares read from that run's config, so the two
# cannot drift apart)
SHARES=$($PY -c 'import sys; from omegaconf import OmegaConf
cfg = OmegaConf.load(sys.argv[1])
keys = ("stage.target.own_round_share", "stage.target.wrong_share")
print(" ".join(f"{k}={OmegaConf.select(cfg, k, default=0.0)}" for k in keys))' "$TINY/uir/config.yaml")
# shellcheck disable=SC2086
$PY scripts/train.py stage=uir condition=none experiment=tiny name="$(basename "$NONE")" tiny_dir=$TINY/pretrained \
    autoencoder.pretrained=$TINY/autoencoder/model hydra.run.dir=$NONE/uir resume=true trainer.progress=false \
    $SHARES ${EXTRA:-}
[ -d "$TINY/exported/none_uir" ] || $PY scripts/export_pipeline.py run_dir=$NONE/uir lqa_from=$TINY/cond_align \
    out=$TINY/exported/none_uir
# the control gets its stop threshold the way the model does (tiny_experiment.sh: calibrate_stop.py)
[ -f "$TINY/exported/none_uir/stop_calibration.json" ] || $PY scripts/calibrate_stop.py model=$TINY/exported/none_uir

evaluate() {  # variant [eval overrides...]: the three groups into $OUT/<variant>/<group>
  local variant=$1; shift
  [ -f "$OUT/$variant/C/summary.csv" ] && return
  $PY scripts/eval.py -m $GROUPS_SWEEP benchmark.root=$BENCH 'metrics=[psnr,ssim]' progress=false \
      method.name=$variant hydra.sweep.dir=$OUT/$variant 'hydra.sweep.subdir=${benchmark.group}' "$@"
}
evaluate identity method=identity
evaluate rar method=rar method.target.path=$MODEL
evaluate rounds_1 method=rar method.target.path=$MODEL +method.target.max_rounds=1 +method.target.stop=fixed
evaluate rounds_3 method=rar method.target.path=$MODEL +method.target.max_rounds=3 +method.target.stop=fixed
evaluate none_uir method=rar method.target.path=$TINY/exported/none_uir
[ -f "$OUT/stop/C/stop_accuracy.json" ] || $PY scripts/stop_accuracy.py -m $GROUPS_SWEEP benchmark.root=$BENCH \
    model=$MODEL hydra.sweep.dir=$OUT/stop 'hydra.sweep.subdir=${benchmark.group}'

$PY - "$OUT" <<'PY' | tee "$OUT/quality_bar.md"
import sys
from rar.eval.quality_bar import quality_bar
print(quality_bar(sys.argv[1])[0])
PY
