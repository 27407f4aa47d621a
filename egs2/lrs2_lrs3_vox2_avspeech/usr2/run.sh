#!/usr/bin/env bash
# USR 2.0 Huge (paper Sec. 5.4 and Appendix C.1): one model for V, A and AV, trained on
# LRS2 + LRS3 labelled (656 h: LRS2 pretrain+train, LRS3 pretrain+trainval) and English
# VoxCeleb2 + AVSpeech unlabelled (2,649 h); scored on LRS3 and LRS2 test.
#
#   ./run.sh --ngpu 8                              # stages 1-13 (the paper used 64 GPUs)
#   ./run.sh --stop_stage 5                        # data + tokenizer only
#   ./run.sh --stage 11 --pretrained_encoder /path/to/encoder.pth   # usr2_import --encoder_only; README.md
#
# Options of this script: --model (huge; others run with the Huge data, not a paper
# configuration), --max_len (s, LRS pretrain / VoxCeleb2 chunks), --valid_size (LRS3
# trainval utterances held out for validation), --nj, --{lrs2,lrs3,vox2,avspeech}_landmarks_dir
# (precomputed landmarks instead of face detection, per corpus), --data_opts "..." (more
# local/data.sh options). Every other option goes to usr2.sh (e.g. --stage 10, --ngpu 8).
# Hyper-parameters (paper Appendix A, "All (Huge)"): lr 7e-4, drop path 0.3, weight decay
# 0.04 in conf/train_usr2_huge.yaml; 700 / 2400 labelled / unlabelled frames per GPU here.
set -euo pipefail

model=huge
max_len=16
valid_size=1200
nj=8
data_opts=""
# read by name below ("${!dir_var}")
# shellcheck disable=SC2034
lrs2_landmarks_dir="" lrs3_landmarks_dir="" vox2_landmarks_dir="" avspeech_landmarks_dir=""
help_message="Usage: $0 [options]
  --model M                  model size: conf/train_usr2_<M>.yaml [${model}]
$(. scripts/run_help.sh; corpus_options_help max_len valid_size nj data_opts lrs2_landmarks_dir lrs3_landmarks_dir vox2_landmarks_dir avspeech_landmarks_dir)"
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }
[ -f "conf/train_usr2_${model}.yaml" ] || { echo "$0: no conf/train_usr2_${model}.yaml" >&2; exit 1; }
[ "${model}" = huge ] || echo "$0: note: --model ${model} on the Huge data is not a paper configuration" >&2

local_opts="--max_len ${max_len} --valid_size ${valid_size} --nj ${nj} ${data_opts}"
# AVSpeech rows say which face speaks; other sets have no hint and keep one face.
roi_opts="--face_hint data/face_hint.scp"
any_landmarks=false
for c in lrs2 lrs3 vox2 avspeech; do
    dir_var="${c}_landmarks_dir"
    if [ -n "${!dir_var}" ]; then
        local_opts+=" --${dir_var} ${!dir_var}"
        any_landmarks=true
    fi
done
# Utterances missing from data/lm.scp (e.g. a corpus without landmarks) get face detection.
[ "${any_landmarks}" = false ] || roi_opts+=" --landmarks data/lm.scp"

. scripts/paper_training.sh
paper_training_opts "${model}" 700 2400  # frames per GPU, labelled / unlabelled
./usr2.sh \
    --nj "${nj}" \
    --local_data_opts "${local_opts}" \
    --roi_opts "${roi_opts}" \
    --labelled_sets "lrs2_pretrain lrs2_train lrs3_pretrain lrs3_trainval" \
    --unlabelled_sets "vox2 avspeech" \
    --valid_set lrs3_valid \
    --test_sets "lrs3_test lrs2_test" \
    "${training_opts[@]}" \
    "${passthrough_args[@]}"
