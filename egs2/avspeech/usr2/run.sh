#!/usr/bin/env bash
# AVSpeech for USR 2.0: prepares the unlabelled set (stages 1-4) used by the Huge setting
# (../../lrs2_lrs3_vox2_avspeech/usr2), and, given transcripts (AVSPEECH_TEXT in db.sh),
# the paper's AVSpeech OOD test (AV, greedy decoding) with a trained model:
#
#   ./run.sh                                         # data/avspeech -> dump/avspeech (stages 1-4)
#   ./run.sh --stage 2 --stop_stage 3 --unlabelled_sets "" --test_sets avspeech_test
#   ./run.sh --stage 12 --stop_stage 13 --expdir ../../lrs3/usr2/exp --tag <model tag> \
#       --inference_config conf/decode_ood.yaml --modalities av --test_sets avspeech_test
#
# Stage 2 crops the face the CSV points at (data/face_hint.scp: usr2_prepare_roi
# --face_hint), so the right person is used when several are in view.
# Options: --landmarks_dir, --nj, --data_opts; the rest goes to usr2.sh.
set -euo pipefail

landmarks_dir=""
nj=8
data_opts=""
help_message="Usage: $0 [options]
$(. scripts/run_help.sh; corpus_options_help landmarks_dir nj data_opts)"
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
local_opts="--nj ${nj} ${data_opts}"
# usr2.sh; stage 2 crops the face the CSV points at; --landmarks_dir, if given, to local/data.sh
# and the mouth-ROI stage
. scripts/corpus_usr2.sh
corpus_usr2 "${landmarks_dir}" "${local_opts}" "--face_hint data/face_hint.scp" \
    --nj "${nj}" \
    --unlabelled_sets avspeech \
    --min_frames 10 \
    --max_frames 400 \
    --stop_stage 4 \
    "${passthrough_args[@]}"
