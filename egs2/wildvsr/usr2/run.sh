#!/usr/bin/env bash
# USR 2.0's out-of-distribution VSR test (paper §5.3, Table 5.2; Table 9 for the Huge model):
# WildVSR, video only, decoded with greedy attention decoding at most 0.4 tokens per frame
# (conf/decode_ood.yaml) by a model trained by any recipe, then scored (RESULTS.md).
# Clips with an audio track are decoded in V only too (--modalities v).
#
#   export WILDVSR=/data/WildVSR          # videos/ + labels.json (or WILDVSR_LIST=uttid-path-words list)
#   ./run.sh --model_dir ../../lrs3/usr2/exp/<tag>
#
# Options of this script: --model_dir (required), --nj; the rest goes to usr2.sh
# (e.g. --inference_model valid.acc_av.ave.pth, --roi_opts "--landmarks lm.scp", --ngpu 1).
set -euo pipefail

model_dir=""
nj=8
help_message="Usage: $0 --model_dir DIR [options]
  --model_dir DIR            the model to test (config.yaml + model file, from any recipe or usr2_import)
  --nj N                     mouth-ROI extraction jobs [${nj}]
Every other option goes to usr2.sh (./usr2.sh --help)."
passthrough_args=()
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
[ -n "${model_dir}" ] || { echo "$0: --model_dir is required (a trained model: config.yaml + model file)" >&2; exit 1; }

./usr2.sh \
    --stop_stage 13 \
    --nj "${nj}" \
    --allow_single_stream true \
    --test_sets test \
    --model_dir "${model_dir}" \
    --modalities v \
    --inference_config conf/decode_ood.yaml \
    "${passthrough_args[@]}"
