#!/usr/bin/env bash
# USR 2.0's out-of-distribution ASR test (paper §5.3, Table 5.2): LibriSpeech test-clean (and
# test-other), audio only, decoded with greedy attention decoding at most 0.4 tokens per frame
# (conf/decode_ood.yaml) by a model trained by any recipe, then scored (RESULTS.md).
#
#   export LIBRISPEECH=/data/LibriSpeech
#   ./run.sh --model_dir ../../lrs3/usr2/exp/<tag>      # config.yaml + the model file it selects
#
# Options of this script: --model_dir (required), --splits, --nj; the rest goes to usr2.sh
# (e.g. --inference_model valid.acc_av.ave.pth, --inference_config conf/decode_beam40.yaml, --ngpu 1).
set -euo pipefail

model_dir=""
splits=test-clean,test-other
nj=8
help_message="Usage: $0 --model_dir DIR [options]
  --model_dir DIR            the model to test (config.yaml + model file, from any recipe or usr2_import)
  --splits A,B               LibriSpeech splits [${splits}]
  --nj N                     data preparation jobs [${nj}]
Every other option goes to usr2.sh (./usr2.sh --help)."
passthrough_args=()
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
[ -n "${model_dir}" ] || { echo "$0: --model_dir is required (a trained model: config.yaml + model file)" >&2; exit 1; }
sets="$(echo "${splits//,/ }" | tr '-' '_')"

./usr2.sh \
    --stop_stage 13 \
    --nj "${nj}" \
    --local_data_opts "--splits ${splits}" \
    --allow_single_stream true \
    --test_sets "${sets}" \
    --model_dir "${model_dir}" \
    --modalities a \
    --inference_config conf/decode_ood.yaml \
    "${passthrough_args[@]}"
