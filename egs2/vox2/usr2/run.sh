#!/usr/bin/env bash
# VoxCeleb2 (English) for USR 2.0: prepares the unlabelled set (stages 1-4) used by the
# LRS3+VoxCeleb2 and Huge settings, and, given transcripts (VOX2_TEXT in db.sh), decodes
# and scores the length buckets with a trained model (the paper's long-utterance test):
#
#   ./run.sh                                          # data/vox2 -> dump/vox2 (stages 1-4)
#   ./run.sh --stage 12 --stop_stage 13 --expdir ../../lrs3/usr2/exp --tag <model tag> \
#       --inference_config conf/decode_ood.yaml --test_sets "$(cd data && echo vox2_test_len*)"
#
# Options: --landmarks_dir, --max_len, --nj, --data_opts; the rest goes to usr2.sh.
set -euo pipefail

landmarks_dir=""
max_len=16
nj=8
data_opts=""
help_message="Usage: $0 [options]
$(. scripts/run_help.sh; corpus_options_help landmarks_dir max_len nj data_opts)"
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
local_opts="--max_len ${max_len} --nj ${nj} ${data_opts}"
# usr2.sh; --landmarks_dir, if given, to local/data.sh and the mouth-ROI stage (no ROI options else)
. scripts/corpus_usr2.sh
corpus_usr2 "${landmarks_dir}" "${local_opts}" "" \
    --nj "${nj}" \
    --unlabelled_sets vox2 \
    --min_frames 10 \
    --max_frames 400 \
    --stop_stage 4 \
    "${passthrough_args[@]}"
