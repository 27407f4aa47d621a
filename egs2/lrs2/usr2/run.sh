#!/usr/bin/env bash
# USR 2.0 on LRS2: main/ train labelled, pretrain/ unlabelled (low-resource analogue of
# LRS3's setting) or labelled (--setting high); val for validation, test for scoring.
#
#   ./run.sh                                   # --setting low --model base
#   ./run.sh --setting high --model base_plus
#   ./run.sh --landmarks_dir /path/to/lrs2_landmarks   # precomputed landmarks, no face detection
#
# Options of this script: --setting low|high, --model base|base_plus|large|huge,
# --landmarks_dir, --max_len, --nj, --data_opts "..."; the rest goes to usr2.sh.
set -euo pipefail

setting=low
model=base
landmarks_dir=""
max_len=16
nj=8
data_opts=""
help_message="Usage: $0 [--setting low|high] [--model base|base_plus|large|huge] [options]
  --setting S                data setting [${setting}]
  --model M                  model size: conf/train_usr2_<M>.yaml [${model}]
$(. scripts/run_help.sh; corpus_options_help landmarks_dir max_len nj data_opts)"
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
case "${setting}" in
    low) lab="train"; unlab="pretrain"; lab_frames=600; unlab_frames=4400 ;;
    high) lab="pretrain train"; unlab=""; lab_frames=1200; unlab_frames=3200 ;;
    *) echo "$0: --setting must be low or high (got '${setting}')" >&2; exit 1 ;;
esac
[ -f "conf/train_usr2_${model}.yaml" ] || { echo "$0: no conf/train_usr2_${model}.yaml" >&2; exit 1; }

local_opts="--max_len ${max_len} --nj ${nj} ${data_opts}"

# usr2.sh; --landmarks_dir, if given, to local/data.sh and the mouth-ROI stage (no ROI options else)
# and the paper's training options (scripts/paper_training.sh) with this setting's frames per GPU
. scripts/corpus_usr2.sh
. scripts/paper_training.sh
paper_training_opts "${model}" "${lab_frames}" "${unlab_frames}"
corpus_usr2 "${landmarks_dir}" "${local_opts}" "" \
    --nj "${nj}" \
    --labelled_sets "${lab}" \
    --unlabelled_sets "${unlab}" \
    --valid_set val \
    --test_sets test \
    "${training_opts[@]}" \
    "${passthrough_args[@]}"
