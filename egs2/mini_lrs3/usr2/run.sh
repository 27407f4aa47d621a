#!/usr/bin/env bash
# The embedded default recipe: generate the mini LRS3-format corpus, then run usr2.sh
# stages 1-13 with a model small enough for a CPU, and print the WER table for A, V, AV.
#
#   ./run.sh                      # everything (about 12 minutes on 2 CPU cores)
#   ./run.sh --stage 11           # any usr2.sh option is passed through
#   ./run.sh --gen_opts "--n_pretrain 40 --n_trainval 60 --n_test 12"   # a smaller corpus
#
# Setting: supervised warm-up on trainval (minus 20 held-out utterances for validation),
# then semi-supervised USR 2.0 training with pretrain/ as unlabelled data, started from
# the supervised model; joint CTC/attention beam search (beam 10). (pretrain cannot also be
# labelled: the semi-supervised sampler refuses ids in both pools, and usr2.sh uses one
# labelled set for both stages.)
set -euo pipefail

gen_opts=""       # options of usr2_make_mini_lrs3 (corpus sizes, --seed)
stage=1           # stages up to 1 (re)generate the corpus when it is not complete
nj=2              # mouth-ROI extraction jobs
inference_nj=2
# CPU threads for training (stage 11): the cores, at most 4 (more do not pay at this size);
# --train_nthreads N overrides it
train_nthreads=$(( $(nproc) < 4 ? $(nproc) : 4 ))
help_message="Usage: $0 [options]
  --gen_opts \"...\"    options of usr2_make_mini_lrs3 [${gen_opts}]
  --stage N           first stage; up to 1 the corpus is (re)generated when incomplete [${stage}]
  --nj N              mouth-ROI extraction jobs [${nj}]
  --inference_nj N    decoding jobs [${inference_nj}]
  --train_nthreads N  CPU threads for training [${train_nthreads}]
Every other option goes to usr2.sh (./usr2.sh --help)."
passthrough_args=()  # every other option goes to usr2.sh
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; exit 1; }

. ./path.sh
. ./db.sh

if [ "${stage}" -le 1 ]; then
    echo "run.sh: generating the mini corpus in ${MINI_LRS3} (kept if already complete)"
    # shellcheck disable=SC2086
    python -m espnet_usr2.bin.usr2_make_mini_lrs3 --out "${MINI_LRS3}" --seed 0 --nj "${nj}" \
        --log_level WARNING ${gen_opts}
fi

marker="$(mktemp)"
trap 'rm -f "${marker}"' EXIT

./usr2.sh \
    --stage "${stage}" \
    --stop_stage 13 \
    --nj "${nj}" \
    --inference_nj "${inference_nj}" \
    --train_nthreads "${train_nthreads}" \
    --local_data_opts "--long_test true --valid_from trainval --valid_size 20" \
    --labelled_sets trainval_train \
    --unlabelled_sets pretrain \
    --valid_set valid \
    --test_sets test \
    --min_frames 10 \
    --max_frames 400 \
    --nbpe 64 \
    --sup_train_config conf/train_usr2_mini_sup.yaml \
    --train_config conf/train_usr2_mini.yaml \
    --labelled_batch_frames 600 \
    --unlabelled_batch_frames 600 \
    --inference_config conf/decode_mini.yaml \
    "${passthrough_args[@]}"

# The WER table of the RESULTS.md this run wrote (stage 13), as the last thing printed
# (none when the stages asked for stopped before any wrote exp/).
[ -d exp ] || exit 0
find exp -name RESULTS.md -newer "${marker}" 2>/dev/null | while IFS= read -r results; do
    echo
    echo "run.sh: WER (%) on the mini test set, from ${results}:"
    awk '/^### WER \(%\) per modality/ { on = 1; next } on && /^###/ { exit } on && NF' "${results}"
done
