#!/usr/bin/env bash
# USR 2.0 on LRS3 (paper Table 2), in the paper's settings:
#
#   ./run.sh --setting low  --model base       # LRS3 low-resource: trainval labelled, pretrain unlabelled
#   ./run.sh --setting vox2_low --model base_plus   # + VoxCeleb2 (English) unlabelled; also --model large
#   ./run.sh --setting vox2_high --model large      # pretrain+trainval labelled, VoxCeleb2 unlabelled
#   ./run.sh --setting high --model base       # pretrain+trainval labelled, no unlabelled data (supervised)
#   ./run.sh --setting low --model base --pretrained_encoder enc.pth   # from USR's self-supervised encoder
#   ./run.sh --stage 12 --stop_stage 13 --model_dir released/base   # decode LRS3 test with a given model
#
# Options of this script: --setting, --model, --landmarks_dir DIR (precomputed landmarks in
# the corpus layout, instead of face detection), --max_len (pretrain split, s), --valid_size,
# --nj, --data_opts "..." (more local/data.sh options). Every other option goes to usr2.sh
# (e.g. --stage 10, --stop_stage 5, --ngpu 8, --init_param ..., --pretrained_encoder ...).
# Hyper-parameters (paper Appendix A): the model config carries lr / drop path / weight
# decay; the frames per GPU of the setting are passed as --labelled_batch_frames /
# --unlabelled_batch_frames.
set -euo pipefail

setting=low
model=base
landmarks_dir=""
max_len=16
valid_size=1200
nj=8
data_opts=""
help_message="Usage: $0 [--setting low|vox2_low|vox2_high|high] [--model base|base_plus|large] [options]
  --setting S                data setting [${setting}]
  --model M                  model size: conf/train_usr2_<M>.yaml [${model}]
$(. scripts/run_help.sh; corpus_options_help landmarks_dir max_len valid_size nj data_opts)"
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }

# Sets and frames per GPU (labelled / unlabelled) of each setting (paper Appendix A, Table 6).
case "${setting}" in
    low) lab="trainval"; unlab="pretrain"; lab_frames=600; unlab_frames=4400; vox2=false ;;
    vox2_low) lab="trainval"; unlab="pretrain vox2"; lab_frames=300; unlab_frames=3200; vox2=true ;;
    vox2_high) lab="pretrain trainval"; unlab="vox2"; lab_frames=1200; unlab_frames=3200; vox2=true ;;
    high) lab="pretrain trainval"; unlab=""; lab_frames=1200; unlab_frames=3200; vox2=false ;;
    *) echo "$0: --setting must be low, vox2_low, vox2_high or high (got '${setting}')" >&2; exit 1 ;;
esac
case "${model}" in
    base | base_plus | large) ;;
    *) echo "$0: --model must be base, base_plus or large (got '${model}')" >&2; exit 1 ;;
esac
# The paper's combinations: Base on LRS3 alone (lr 3e-3); Base+ and Large with VoxCeleb2
# (lr 2e-3; drop path 0.1 / 0.2). Other combinations run, with the config's values.
case "${setting}/${model}" in
    low/base | vox2_*/base_plus | vox2_*/large) ;;
    *) echo "$0: note: ${model} in setting ${setting} is not a paper configuration (see README.md)" >&2 ;;
esac

local_opts="--max_len ${max_len} --valid_size ${valid_size} --nj ${nj} --vox2 ${vox2} ${data_opts}"

# usr2.sh; --landmarks_dir, if given, to local/data.sh and the mouth-ROI stage (no ROI options else)
# and the paper's training options (scripts/paper_training.sh) with this setting's frames per GPU
. scripts/corpus_usr2.sh
. scripts/paper_training.sh
paper_training_opts "${model}" "${lab_frames}" "${unlab_frames}"
corpus_usr2 "${landmarks_dir}" "${local_opts}" "" \
    --nj "${nj}" \
    --labelled_sets "${lab}" \
    --unlabelled_sets "${unlab}" \
    --valid_set valid \
    --test_sets test \
    "${training_opts[@]}" \
    "${passthrough_args[@]}"
