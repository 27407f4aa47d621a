#!/usr/bin/env bash
# The paper's comparisons (USR 2.0, Sec. 5: Tables 1, 10-12, Fig. 3-5) in miniature, on a
# low-resource mini corpus: many more unlabelled than labelled clips, labelled clips much
# shorter than the long test utterances. From ONE supervised warm-up, every method continues
# for the same number of optimiser steps, for each seed. A method is a conf file,
# conf/compare/<method>.yaml: its usr2.sh options (usr2_sh) and the usr2_train arguments it adds
# to the harness's own (usr2_train: --seed, the step budget, --train_args); ${seed} and
# ${sup_batch_size} in it are the run's seed and --sup_batch_size. Adding an arm is adding a
# file; --dry_run true prints what each method x seed would run with. The methods:
#
#   sup       supervised only (labelled batches only)
#   usr1      USR v1 (--semi usr1: AR pseudo-labels every step, frame-level CTC PLs)
#   usr2      USR 2.0, mixed sampling p_AR 0.5 (the paper's default)
#   usr2_ctc  USR 2.0, CTC-driven teacher forcing only (p_AR 0)
#   usr2_ar   USR 2.0, autoregressive pseudo-labels only (p_AR 1)
#
# and the open readings of the method (issue 12, point 4), each USR 2.0 with one switch:
#   usr2_emitting  sequence confidence (eq. 12) averaged over the emitting frames only
#   usr2_tview     the teacher sees its own random crop and flip (USR's code; the default since issue 20)
#   usr2_lsm       label smoothing 0.1 on the decoder's CTC-target term of eq. 5
#   usr2_gamma_a   gamma_a = 0.5 instead of 0.75 (eq. 17-18: less weight on the teacher's
#                  audio-visual pseudo-labels for the audio branch)
#
# and the training choices USR's code decides (issue 20; the defaults follow USR's code):
#   usr2_prev      USR 2.0 as this project trained it before: the teacher in eval mode with
#                  the student's running batch-norm statistics, the centre crop for the
#                  teacher, no unlabelled heads
#   usr2_hcopy     the unlabelled heads start as copies of the warm-up's heads (since issue 21
#   usr1_hcopy     the mini config's default, so these equal usr2 and usr1; kept to pin the choice)
#   usr2_hrand     the unlabelled heads start random, as USR's code starts them (the default
#   usr1_hrand     before issue 21; USR's code trains every head from the start, this harness
#                  continues from a supervised warm-up)
#
# Language knowledge (issue 14) and pre-training (issue 13) are arms of the same harness, made
# from any method <m> above by its name (rules of this script, no file of their own):
#   <m>_comat  method <m> plus COMAT (comat_conf: the stage-2 LM as the PLM, plm: espnet_lm,
#              weight --comat_weight, 1.0 as README.md documents); needs --use_lm true.
#              E.g. sup_comat, usr2_comat.
#   <m>_comatpl  the same, and COMAT also on the unlabelled clips, the PLM reading the
#              teacher's CTC pseudo-label (comat_conf pseudo_labels: true); <m> a usr2 method
#              (usr2_sh semi_type: usr2).
#   pt_<m>     method <m> continued from warmup_pt instead of warmup: the same warm-up
#              (config, seed) started from a self-supervised encoder; needs --pretrain_config.
#              E.g. pt_sup, pt_usr2, pt_usr2_comat.
#
#   ./run_compare.sh                                    # the default comparison, 3 seeds
#   ./run_compare.sh --methods "usr2 usr2_emitting usr2_tview usr2_lsm usr2_gamma_a"
#   ./run_compare.sh --stage 4 --seeds "1"              # more runs on the prepared data
#   ./run_compare.sh --methods "sup usr2 pt_usr2_comat" --dry_run true  # each run's options, nothing run
#   # issue 14: CTC-greedy and joint-beam WER with / without COMAT and LM fusion
#   ./run_compare.sh --use_lm true --lm_train_text dump_cmp/pretrain/text \
#       --methods "sup sup_comat usr2 usr2_comat" --decodes "greedy=conf/decode_greedy_att.yaml \
#       ctc=conf/decode_greedy_ctc.yaml beam=conf/decode_mini.yaml beam_lm=conf/decode_mini_lm.yaml"
#   # issue 13: with / without self-supervised pre-training
#   ./run_compare.sh --pretrain_config conf/pretrain_usr2_mini.yaml --methods "sup pt_sup usr2 pt_usr2"
#
# Stages (each says what it writes; directories end in _cmp so the mini recipe's own
# data/, dump/ and exp/ are untouched):
#   1  corpus: usr2_make_mini_lrs3 with --gen_opts        -> ${corpus}
#   2  data, mouth ROIs, tokenizer, shapes (usr2.sh 1-10) -> data_cmp/ dump_cmp/ exp_cmp/stats_*
#      (skipped when dump_cmp/prepared.txt holds the same corpus, sizes and configs)
#      --use_lm true: the LM (usr2.sh 6-8, --lm_config) on the labelled transcripts
#      (+ --lm_train_text)                                -> exp_cmp/lm_<lm config name>/
#   3  supervised warm-up (usr2.sh 11), decoded (12-13)   -> exp_cmp/warmup/
#      the pseudo-labels it makes as a teacher (where every run's teacher starts), scored
#      per length bucket on --pl_sets (usr2_pl_quality) -> exp_cmp/warmup/pl_quality/<set>/
#      --pretrain_config: self-supervised pre-training on --pretrain_sets (video and audio,
#      no text; usr2.sh 11 --pretrain_config), then the same warm-up from its encoder,
#      decoded the same ways                             -> exp_cmp/pretrain_<config>_<sets>/,
#                                                           exp_cmp/warmup_pt/ (a runs.tsv row
#                                                           after stage 4's)
#   4  each method x seed from the warm-up (usr2.sh 11-13: each --decodes TAG=YAML on test
#      and test_long)                                     -> exp_cmp/<method>_seed<k>/<TAG>/
#      and a semi-supervised run's EMA teacher's pseudo-labels scored as the warm-up's were
#                                                         -> exp_cmp/<method>_seed<k>/pl_quality/<set>/
#      (a finished run resumes as finished; a decoding or scoring done after its model was
#      written is skipped: rerunning a stage redoes only what is missing)
#   5  babble-noise sweep (A, AV; --noise_config)         -> exp_cmp/<method>_seed<k>/noise/
#   6  report: tables, plots, failure counts, time to accuracy, seconds per training step
#                                                         -> exp_cmp/compare/
# exp_cmp/runs.tsv lists the runs; exp_cmp/timing.tsv the wall-clock of every stage and run
# (pre-training apart from the warm-up that follows it: rows pretrain and warmup_pt).
#
# Decoding: --decodes "TAG=YAML ..." (default: greedy attention and joint beam search, the
# report's two tags). A config that sets lm_weight > 0 decodes with shallow fusion of the
# stage-2 LM (usr2.sh --use_lm true --lm_exp for that tag only); every other tag is decoded
# with --use_lm false, so it stays LM-free whatever --use_lm says.
#
# LM text: the labelled transcripts, plus --lm_train_text (Kaldi text files). In this mini
# setting the unlabelled clips' transcripts (dump_cmp/pretrain/text) may serve as external LM
# text, and the issue-14 command above uses them: they never reach the recognition model as
# labels (semi-supervised training reads only their audio and video), and the generator never
# repeats a training sentence in test or test_long, so the LM sees no test sentence -- text of
# the domain as LRS3's own transcripts or a text corpus would be for the real recipe.
set -euo pipefail

seeds="1 2 3"
# usr1 and usr2 first: with --jobs 2 they train side by side, under the same load (time to accuracy)
methods="usr1 usr2 sup usr2_ctc usr2_ar"
stage=1
stop_stage=6
# corpus (issue 21: a setting whose decoder decodes): 620 trainval clips (600 labelled + 20
# valid) of 3-8 words, 3000 unlabelled (1:5), half of them several sentences (9-20 words: longer
# than any labelled clip, as LRS3's pretrain set and VoxCeleb2 are), 60 test clips, 40 long
# test clips of 24-32 words (2-4x the longest labelled clip). The first setting (200 labelled,
# 1000 short unlabelled: results/compare*/) is
# --gen_opts "--n_pretrain 1000 --n_trainval 220 --n_test 60 --n_long 40" --model_args ""
gen_opts="--n_pretrain 3000 --n_trainval 620 --n_test 60 --n_long 40 --pretrain_long_share 0.5"
corpus=downloads/mini_lrs3_lowres600
nbpe=64
# the step budget of every continuation: steps_per_epoch x epochs optimiser steps
steps_per_epoch=25
epochs=6
warmup_config=conf/train_usr2_mini_sup.yaml
train_config=conf/train_usr2_mini.yaml
decodes="greedy=conf/decode_greedy_att.yaml beam=conf/decode_mini.yaml"
bootstrap_tag=""  # the decoding whose long-set hypotheses the paired bootstrap compares ("": beam, else the first)
noise_config=conf/decode_mini.yaml  # the babble-noise sweep decodes with the beam search
snrs="10 5 0 -5"
use_lm=false      # true: train an LM in stage 2 (needed by _comat methods and lm_weight decodes)
lm_config=conf/train_lm_mini.yaml
lm_train_text=""  # Kaldi text files added to the labelled transcripts for the LM
lm_args=""        # extra espnet2.bin.lm_train arguments
comat_weight=1.0  # COMAT's weight in each modality's labelled loss (README.md, COMAT)
pretrain_config=""  # self-supervised pre-training before a second warm-up, warmup_pt (stage 3)
pretrain_sets="trainval_train pretrain"  # labelled + unlabelled video and audio, no text
pretrain_args=""  # extra usr2_train arguments of the pre-training
method_confs=conf/compare  # one <method>.yaml per method (the head of this script)
dry_run=false     # true: print each method x seed's warm-up and options, run nothing
jobs=2            # runs trained at the same time (each with train_nthreads threads)
train_nthreads=1
warmup_nthreads=$(( $(nproc) < 4 ? $(nproc) : 4 ))  # the warm-up trains alone
nj=2              # mouth-ROI extraction jobs
valid_size=20
# usr2_train arguments of the warm-ups and every continuation: the configs' model with a 3-block,
# 512-unit decoder (issue 21: with 1 block greedy attention did not decode)
model_args="--decoder_conf num_blocks=3 --decoder_conf linear_units=512"
warmup_args=""    # extra usr2_train arguments of the warm-up
train_args=""     # extra usr2_train arguments of every continuation
pl_sets="pretrain test_long"  # sets whose transcripts score the teachers' pseudo-labels ("": none)
pl_utts=300       # clips scored per set (a random subset of the larger sets)
# seconds per Base training step on a GPU (H200, 16 + 16 x 150 frames, bf16;
# bench/results/h200_2026-11-29/gpu_check_batch16.md): USR v1 0.694; USR 2.0 with p_AR 0.5 is
# half CTC-driven steps (0.486) and half AR steps (0.800), 0.643 on average. The report
# multiplies the steps-to-accuracy ratio by their ratio: the time to accuracy a GPU user pays.
gpu_step_seconds="usr2=0.643 usr1=0.694"
gpu_step_source="H200, Base, 16 + 16 x 150 frames: bench/results/h200_2026-11-29/gpu_check_batch16.md"
# time to accuracy (report): the valid metric and its target ("": the highest value every usr2 and
# usr1 run reaches). acc_v: in issue 21's setting the warm-up's acc_av (0.985) is above any value
# every run reaches, so acc_av cannot time the continuations (the report says so); the first
# setting's reports used acc_av. results/compare_issue21/ used --tta_target 0.925.
tta_metric=acc_v
tta_target=""
batch_frames=600  # labelled and unlabelled frames per semi-supervised step
sup_batch_size=8  # labelled clips per supervised step (about batch_frames of labelled clips)
datadir=data_cmp
dumpdir=dump_cmp
expdir=exp_cmp
help_message="Usage: $0 [options]
  --stage N / --stop_stage N   stages to run [${stage} / ${stop_stage}]
  --seeds \"1 2 3\"              training seeds of the continuations [${seeds}]
  --methods \"...\"              methods (see the head of this script) [${methods}]
  --method_confs DIR           the methods' conf files, <method>.yaml [${method_confs}]
  --dry_run true|false         print each method x seed's warm-up, usr2.sh options and usr2_train
                               arguments, and stop before any work [${dry_run}]
  --gen_opts \"...\"             corpus sizes (usr2_make_mini_lrs3 options) [${gen_opts}]
  --corpus DIR                 where the corpus is generated [${corpus}]
  --steps_per_epoch N          optimiser steps per epoch of a continuation [${steps_per_epoch}]
  --epochs N                   epochs of a continuation (validated after each) [${epochs}]
  --warmup_config YAML         supervised warm-up [${warmup_config}]
  --train_config YAML          continuation (model = the warm-up's) [${train_config}]
  --decodes \"TAG=YAML ...\"     decodings of every run, each in <run>/<TAG>/ [${decodes}]
                               (a config with lm_weight > 0 fuses the stage-2 LM: needs --use_lm true);
                               a decoding already scored after its model was written is skipped
  --bootstrap_tag TAG          the decoding the report's paired bootstrap compares [beam if a tag, else the first]
  --noise_config YAML          decoding of the babble-noise sweep [${noise_config}]
  --snrs \"10 5 0 -5\"           babble-noise SNRs (dB); empty skips stage 5 [${snrs}]
  --use_lm true|false          train an LM in stage 2 (usr2.sh 6-8) for COMAT and fusion [${use_lm}]
  --lm_config YAML             its ESPnet LM config [${lm_config}]
  --lm_train_text \"F1 F2\"      Kaldi text files added to the labelled transcripts [${lm_train_text}]
                               (e.g. dump_cmp/pretrain/text, the unlabelled clips' transcripts)
  --lm_args \"...\"              extra espnet2.bin.lm_train arguments [${lm_args}]
  --comat_weight X             COMAT weight of the <m>_comat(pl) methods [${comat_weight}]
  --pretrain_config YAML       pre-train an encoder and run a second warm-up, warmup_pt, from it
                               (stage 3), for the pt_<m> methods [${pretrain_config}]
  --pretrain_sets \"A B\"        sets pre-training reads (no text) [${pretrain_sets}]
  --pretrain_args \"...\"        extra usr2_train arguments of the pre-training [${pretrain_args}]
  --jobs N                     continuations trained at the same time [${jobs}]
  --train_nthreads N           CPU threads per continuation [${train_nthreads}]
  --warmup_nthreads N          CPU threads of the warm-up [${warmup_nthreads}]
  --nj N                       mouth-ROI extraction jobs [${nj}]
  --valid_size N               trainval clips held out for validation [${valid_size}]
  --nbpe N                     SentencePiece vocabulary [${nbpe}]
  --model_args \"...\"           usr2_train arguments of the warm-ups and continuations: the model [${model_args}]
  --warmup_args / --train_args \"...\"  extra usr2_train arguments [] []
  --pl_sets \"A B\"              sets (with transcripts) on which each teacher's pseudo-labels are scored,
                               per length bucket: the warm-up (every teacher's start) in stage 3,
                               each semi-supervised run's EMA teacher at its end in stage 4 [${pl_sets}]
  --pl_utts N                  clips scored per set (random subset) [${pl_utts}]
  --gpu_step_seconds \"M=S ...\"  seconds per step on a GPU of the time-to-accuracy methods [${gpu_step_seconds}]
  --gpu_step_source \"...\"      where they were measured [${gpu_step_source}]
  --tta_metric NAME            valid metric of the time to accuracy [${tta_metric}]
  --tta_target X               its target [empty: the highest value every usr2 and usr1 run reaches]
  --batch_frames N             labelled (and unlabelled) frames per semi-supervised step [${batch_frames}]
  --sup_batch_size N           labelled clips per step of 'sup' [${sup_batch_size}]
  --datadir / --dumpdir / --expdir DIR  [${datadir} / ${dumpdir} / ${expdir}]"
. utils/parse_options.sh
[ "$#" -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; echo "${help_message}" >&2; exit 1; }

. ./path.sh
. scripts/data_dir_utils.sh  # plus_joined
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (run_compare.sh) $*"; }
die() { echo "run_compare.sh: error: $*" >&2; exit 1; }

# base_method METHOD: the method without its pt_ prefix and _comat / _comatpl suffix (see the head)
base_method() {
    local m="${1#pt_}"
    m="${m%_comatpl}"
    echo "${m%_comat}"
}
# uses_comat METHOD: true for <m>_comat and <m>_comatpl
uses_comat() {
    [[ "$1" == *_comat || "$1" == *_comatpl ]]
}
# compare_conf ...: the harness's YAML reader (method confs, decoding configs)
compare_conf() {
    python3 -m espnet_usr2.bin.usr2_compare_conf "$@"
}
# method_conf METHOD: the conf file of METHOD's base method; a name without one fails, listing them
method_conf() {
    local conf f available=()
    conf="${method_confs}/$(base_method "$1").yaml"
    if [ ! -f "${conf}" ]; then
        for f in "${method_confs}"/*.yaml; do
            [ ! -f "${f}" ] || available+=("$(basename "${f}" .yaml)")
        done
        die "unknown method '$1': no ${conf}. The methods: ${available[*]:-none}" \
            "(each also as pt_<m> and <m>_comat, a usr2 one as <m>_comatpl; see the head of $0)"
    fi
    echo "${conf}"
}
# method_opts METHOD: usr2.sh options that make METHOD a supervised or semi-supervised run (usr2_sh)
method_opts() {
    local conf
    conf="$(method_conf "$1")"
    compare_conf options "${conf}" usr2_sh
}
# method_train_args METHOD SEED: its usr2_train arguments (same model, data and step budget),
# the harness's own and then its conf's usr2_train
method_train_args() {
    local conf own args
    conf="$(method_conf "$1")"
    own="$(compare_conf options "${conf}" usr2_train --set "seed=$2" --set "sup_batch_size=${sup_batch_size}")"
    args="--seed $2 --num_iters_per_epoch ${steps_per_epoch} --max_epoch ${epochs} ${model_args} ${train_args}"
    [ -z "${own}" ] || args+=" ${own}"
    # COMAT: the stage-2 LM reads the transcripts; its hidden states are the PLM targets
    if uses_comat "$1"; then
        args+=" --comat_conf plm=espnet_lm --comat_conf lm_train_config=${lm_exp}/config.yaml"
        args+=" --comat_conf lm_file=${lm_file} --comat_conf weight=${comat_weight}"
    fi
    if [[ "$1" == *_comatpl ]]; then  # ... and on the unlabelled clips, reading the CTC pseudo-label
        [ "$(compare_conf value "${conf}" usr2_sh.semi_type --default none)" = usr2 ] \
            || die "method $1: COMAT on pseudo-labels needs a usr2 method (CTC PLs of the teacher)"
        args+=" --comat_conf pseudo_labels=true"
    fi
    echo "${args}"
}
# model_of DIR: the model file a run's config selects
model_of() {
    python3 -m espnet_usr2.bin.usr2_model_selection --exp_dir "$1"
}
# warmup_of METHOD: the warm-up it continues from
warmup_of() {
    [[ "$1" == pt_* ]] && echo warmup_pt || echo warmup
}

case "${use_lm}" in true | false) ;; *) die "--use_lm must be true or false (got '${use_lm}')" ;; esac
# the LM directory usr2.sh stages 6-8 write (its default: <expdir>/lm_<config name>)
lm_exp="${expdir}/lm_$(basename "${lm_config}" .yaml)"
lm_file=""  # its model file, known once stage 2 trained it
[ -z "${pretrain_config}" ] || [ -f "${pretrain_config}" ] || die "--pretrain_config ${pretrain_config} does not exist"
pt_exp="${expdir}/pretrain_$(basename "${pretrain_config:-none}" .yaml)_$(plus_joined "${pretrain_sets}")"
for m in ${methods}; do
    method_conf "${m}" >/dev/null  # unknown names and unreadable confs fail before any work
    method_opts "${m}" >/dev/null
    method_train_args "${m}" 1 >/dev/null
    ! uses_comat "${m}" || [ "${use_lm}" = true ] \
        || die "method ${m} distils the stage-2 LM (COMAT): give --use_lm true"
    [[ "${m}" != pt_* ]] || [ -n "${pretrain_config}" ] \
        || die "method ${m} continues from the pre-trained warm-up: give --pretrain_config (e.g. conf/pretrain_usr2_mini.yaml)"
done

# --decodes: tags in order, each one's config, and whether it fuses the LM (lm_weight > 0)
decode_tags=()
declare -A decode_config=() decode_lm=()
for d in ${decodes}; do
    t="${d%%=*}"
    cfg="${d#*=}"
    [[ "${d}" == *=* && "${t}" =~ ^[A-Za-z0-9_]+$ && -n "${cfg}" ]] \
        || die "--decodes: '${d}' is not TAG=YAML (a tag of letters, digits and _)"
    [ "${t}" != noise ] || die "--decodes: tag 'noise' is the noise sweep's directory"
    [ -z "${decode_config[${t}]+x}" ] || die "--decodes: tag '${t}' is given twice"
    [ -f "${cfg}" ] || die "--decodes: the config of ${t}, ${cfg}, does not exist"
    decode_tags+=("${t}")
    decode_config[${t}]="${cfg}"
    decode_lm[${t}]="$(compare_conf fuses_lm "${cfg}")" || die "--decodes: cannot read ${cfg}"
    [ "${decode_lm[${t}]}" = false ] || [ "${use_lm}" = true ] \
        || die "--decodes: ${t}'s config ${cfg} sets lm_weight > 0 (shallow fusion): give --use_lm true"
done
[ "${#decode_tags[@]}" -gt 0 ] || die "--decodes is empty"
if [ -z "${bootstrap_tag}" ]; then
    bootstrap_tag="${decode_tags[0]}"
    [ -z "${decode_config[beam]+x}" ] || bootstrap_tag=beam  # greedy attention is at the floor in miniature
fi
[ -n "${decode_config[${bootstrap_tag}]+x}" ] || die "--bootstrap_tag ${bootstrap_tag} is not a tag of --decodes (${decode_tags[*]})"

if [ "${dry_run}" = true ]; then
    # what stage 4 would run: method, seed, warm-up, usr2.sh options, usr2_train arguments (the
    # LM model file is known once stage 2 trained it)
    [ ! -f "${lm_exp}/config.yaml" ] || lm_file="$(model_of "${lm_exp}")" || lm_file=""
    lm_file="${lm_file:-${lm_exp}/<model>}"
    for seed in ${seeds}; do
        for m in ${methods}; do
            printf '%s\t%s\t%s\t%s\t%s\n' "${m}" "${seed}" "$(warmup_of "${m}")" "$(method_opts "${m}")" \
                "$(method_train_args "${m}" "${seed}")"
        done
    done
    exit 0
fi

export MINI_LRS3="${corpus}"
mkdir -p "${expdir}"
timing="${expdir}/timing.tsv"
[ -f "${timing}" ] || printf 'what\tseconds\n' >"${timing}"
# record NAME SECONDS: a row of timing.tsv
record() { printf '%s\t%d\n' "$1" "$2" >>"${timing}"; }
# timed NAME CMD...: run CMD and append its wall-clock seconds to timing.tsv
timed() {
    local name="$1" t0=${SECONDS}
    shift
    "$@"
    record "${name}" $(( SECONDS - t0 ))
}
manifest="${expdir}/runs.tsv"
# manifest_add METHOD SEED DIR: a row of runs.tsv (once)
manifest_add() {
    [ -f "${manifest}" ] || printf 'method\tseed\texp_dir\n' >"${manifest}"
    grep -q "^$1	$2	" "${manifest}" || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"${manifest}"
}

# usr2.sh with the options every stage of the comparison shares
usr2() {
    ./usr2.sh --datadir "${datadir}" --dumpdir "${dumpdir}" --expdir "${expdir}" \
        --local_data_opts "--long_test true --valid_from trainval --valid_size ${valid_size} --datadir ${datadir}" \
        --labelled_sets trainval_train --unlabelled_sets pretrain --valid_set valid \
        --test_sets "${test_sets}" --min_frames 10 --max_frames 1000 --nbpe "${nbpe}" \
        --nj "${nj}" --inference_nj 1 --train_nthreads "${train_nthreads}" \
        --labelled_batch_frames "${batch_frames}" --unlabelled_batch_frames "${batch_frames}" "$@"
}

test_sets="test test_long"
# decoded RUN TAG MODEL: RUN's decoding TAG is scored for every test set and modality, after
# its MODEL file was written (a rerun of stage 3 or 4 then skips it; a retrained model is
# decoded again)
decoded() {
    local s m
    [ -n "$3" ] || return 1
    for s in ${test_sets}; do
        for m in video audio audiovisual; do
            [ "${expdir}/$1/$2/${s}/${m}/score_wer/result.txt" -nt "$3" ] || return 1
        done
    done
}

# decode_run RUN: every --decodes config on the test sets, in exp_cmp/RUN/<decode tag>/;
# the LM only where the config fuses it
decode_run() {
    local t lm_opts model
    model="$(model_of "${expdir}/$1")" || model=""  # none yet: usr2.sh's stage 12 says why
    for t in "${decode_tags[@]}"; do
        if decoded "$1" "${t}" "${model}"; then
            log "  ${1}: decoding ${t} is already scored, skipped"
            continue
        fi
        lm_opts=(--use_lm false)
        [ "${decode_lm[${t}]}" = false ] || lm_opts=(--use_lm true --lm_exp "${lm_exp}")
        usr2 --stage 12 --stop_stage 13 --tag "$1" --train_config "${train_config}" \
            --inference_config "${decode_config[${t}]}" --inference_tag "${t}" "${lm_opts[@]}"
    done
}

# pl_quality RUN ROLE: the pseudo-labels RUN's network makes acting as the EMA teacher (ROLE
# student: a warm-up, where every run's teacher starts; teacher: a semi-supervised run's EMA
# teacher at its end), scored per length bucket against the transcripts training never reads,
# on each --pl_sets set -> exp_cmp/RUN/pl_quality/<set>/ (skipped when scored after the model)
pl_quality() {
    local model s out ratio
    model="$(model_of "${expdir}/$1")" || return 1
    # the AR pseudo-labels' length limit the continuations train with (USR's T // 5 if unset)
    ratio="$(compare_conf value "${train_config}" semi_conf.ar_max_len_ratio 2>/dev/null)" || ratio=0.2
    for s in ${pl_sets}; do
        out="${expdir}/$1/pl_quality/${s}"
        mkdir -p "${out%/*}"
        if [ "${out}/results.json" -nt "${model}" ]; then
            log "  ${1}: pseudo-labels on ${s} are already scored, skipped"
            continue
        fi
        python3 -m espnet_usr2.bin.usr2_pl_quality --train_config "${expdir}/$1/config.yaml" --model_file "${model}" \
            --model_role "$2" --data_dir "${dumpdir}/${s}" --max_utts "${pl_utts}" --ar_max_len_ratio "${ratio}" \
            --out_dir "${out}" \
            --log_level WARNING >"${out}.log" 2>&1 || { echo "pseudo-label scoring failed: ${out}.log" >&2; return 1; }
    done
}
# has_teacher METHOD: whether its runs train an EMA teacher (a semi-supervised method)
has_teacher() {
    compare_conf value "$(method_conf "$1")" usr2_sh.semi_type >/dev/null 2>&1
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: the low-resource mini corpus (${gen_opts}) -> ${corpus}"
    # shellcheck disable=SC2086
    timed corpus python3 -m espnet_usr2.bin.usr2_make_mini_lrs3 --out "${corpus}" --seed 0 --nj "${nj}" \
        --log_level WARNING ${gen_opts}
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    # what the prepared data depends on: a rerun with the same settings (e.g. --stage 2 --use_lm
    # true after a finished comparison, to add the LM) keeps the data and shapes runs may be reading
    prepared="${dumpdir}/prepared.txt"
    settings="corpus=${corpus} gen_opts=${gen_opts} valid_size=${valid_size} nbpe=${nbpe} train_config=${train_config}"
    if [ -f "${prepared}" ] && [ "$(cat "${prepared}")" = "${settings}" ]; then
        log "Stage 2: data, ROIs, tokenizer and shapes already prepared with these settings (${prepared}), skipped"
    else
        log "Stage 2: data dirs, mouth ROIs, tokenizer and shapes (usr2.sh stages 1-10) -> ${datadir} ${dumpdir} ${expdir}"
        rm -f "${prepared}"
        timed prepare usr2 --stage 1 --stop_stage 10 --tag prepare --train_config "${train_config}"
        echo "${settings}" >"${prepared}"
    fi
    if [ "${use_lm}" = true ]; then
        log "Stage 2: LM (usr2.sh stages 6-8, ${lm_config}) on the labelled transcripts${lm_train_text:+ + ${lm_train_text}}" \
            "-> ${lm_exp}"
        timed lm usr2 --stage 6 --stop_stage 8 --tag lm --use_lm true --lm_config "${lm_config}" \
            --lm_train_text "${lm_train_text}" --lm_args "${lm_args}"
        [ -f "${lm_exp}/config.yaml" ] || die "usr2.sh stages 6-8 left no LM in ${lm_exp}"
    fi
fi

# what the warm-up and so every run depends on: a comparison continues only with the same
settings="corpus=${corpus} gen_opts=${gen_opts} warmup_config=${warmup_config} model_args=${model_args} warmup_args=${warmup_args}"
settings_file="${expdir}/settings.txt"
same_settings() {
    if [ -f "${settings_file}" ]; then
        [ "$(cat "${settings_file}")" = "${settings}" ] \
            || die "${expdir} holds a comparison made with other settings (${settings_file}): give another --expdir, or the same options"
    elif [ -d "${expdir}/warmup" ]; then
        die "${expdir}/warmup predates ${settings_file}: give another --expdir (or write the settings line there to continue it: ${settings})"
    fi
}

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    same_settings
    echo "${settings}" >"${settings_file}"
    log "Stage 3: supervised warm-up (${warmup_config}) -> ${expdir}/warmup"
    # shellcheck disable=SC2086
    timed warmup usr2 --stage 11 --stop_stage 11 --tag warmup --unlabelled_sets= --train_config "${warmup_config}" \
        --train_nthreads "${warmup_nthreads}" --train_args "${model_args} ${warmup_args}"
    timed decode_warmup decode_run warmup
    timed pl_quality_warmup pl_quality warmup student
    if [ -n "${pretrain_config}" ]; then
        log "Stage 3: pre-training (${pretrain_config}) on ${pretrain_sets} -> ${pt_exp}, then the same warm-up" \
            "from its encoder -> ${expdir}/warmup_pt"
        t0=$(date +%s)
        usr2 --stage 11 --stop_stage 11 --tag warmup_pt --unlabelled_sets= --train_config "${warmup_config}" \
            --train_nthreads "${warmup_nthreads}" --train_args "${model_args} ${warmup_args}" \
            --pretrain_config "${pretrain_config}" --pretrain_sets "${pretrain_sets}" --pretrain_args "${pretrain_args}"
        # the encoder file ends pre-training: wall-clock before it is pre-training, after it the warm-up
        t_pt=$(stat -c %Y "${pt_exp}/encoder/encoder.pth") || die "pre-training wrote no ${pt_exp}/encoder/encoder.pth"
        record pretrain $(( t_pt - t0 ))
        record warmup_pt $(( $(date +%s) - t_pt ))
        timed decode_warmup_pt decode_run warmup_pt
        timed pl_quality_warmup_pt pl_quality warmup_pt student
    fi
fi

# one continuation: train (11), decode (12-13), its teacher's pseudo-labels scored; its log in
# exp_cmp/<tag>.log
run_one() {
    local m="$1" seed="$2" tag="$1_seed$2" init opts args
    init="$(model_of "${expdir}/$(warmup_of "${m}")")"
    opts="$(method_opts "${m}")"  # here, not inside usr2's arguments, so that a failure stops the run
    args="$(method_train_args "${m}" "${seed}")"
    # opts is split into words on purpose: usr2.sh options (none has a space)
    # shellcheck disable=SC2086
    { timed "train_${tag}" usr2 --stage 11 --stop_stage 11 --tag "${tag}" --train_config "${train_config}" \
          --init_param "${init}" ${opts} --train_args "${args}" \
      && timed "decode_${tag}" decode_run "${tag}" \
      && { ! has_teacher "${m}" || timed "pl_quality_${tag}" pl_quality "${tag}" teacher; }; } \
        >>"${expdir}/${tag}.log" 2>&1  # a rerun appends
}

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    same_settings
    for m in ${methods}; do
        [ -d "${expdir}/$(warmup_of "${m}")" ] || die "no warm-up in ${expdir}/$(warmup_of "${m}") for ${m} (stage 3)"
        if uses_comat "${m}" && [ -z "${lm_file}" ]; then
            lm_file="$(model_of "${lm_exp}")" || die "no LM in ${lm_exp} for ${m} (stage 2 with --use_lm true)"
        fi
    done
    log "Stage 4: ${methods} x seeds ${seeds}, ${steps_per_epoch} x ${epochs} steps each from $(model_of "${expdir}/warmup")" \
        "$([ -z "${pretrain_config}" ] || echo "(pt_*: from $(model_of "${expdir}/warmup_pt"))")," \
        "${jobs} at a time -> ${expdir}/<method>_seed<k>"
    failed=0
    for seed in ${seeds}; do  # seed-major: a stopped comparison still has every method of its first seeds
        for m in ${methods}; do
            while [ "$(jobs -rp | wc -l)" -ge "${jobs}" ]; do wait -n || failed=$((failed + 1)); done
            log "  ${m} seed ${seed} (log: ${expdir}/${m}_seed${seed}.log)"
            manifest_add "${m}" "${seed}" "${m}_seed${seed}"
            run_one "${m}" "${seed}" &
        done
    done
    while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=$((failed + 1)); done
    [ "${failed}" -eq 0 ] || die "${failed} runs failed: see the logs in ${expdir}/*_seed*.log"
    if [ -n "${pretrain_config}" ]; then
        # the second warm-up, a row like a method's after them (one run, the warm-up config's
        # seed): its WER, noise and step cost in the report beside the warm-up's
        manifest_add warmup_pt "$(compare_conf value "${expdir}/warmup_pt/config.yaml" seed)" warmup_pt
    fi
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ -n "${snrs}" ]; then
    log "Stage 5: babble noise at ${snrs} dB for A and AV (${noise_config}) -> ${expdir}/<run>/noise"
    tail -n +2 "${manifest}" | while IFS=$'\t' read -r m seed dir; do
        exp="${expdir}/${dir}"
        [ -f "${exp}/noise/done" ] && continue
        # shellcheck disable=SC2086
        timed "noise_${dir}" python3 -m espnet_usr2.bin.usr2_noise_sweep --data_dir "${dumpdir}/test" \
            --work_dir "${exp}/noise" --train_config "${exp}/config.yaml" --model_file "$(model_of "${exp}")" \
            --snrs ${snrs} --config "${noise_config}" --batch_size 20 >"${exp}/noise.log" 2>&1 \
            || die "noise sweep of ${exp} failed: see ${exp}/noise.log"
        touch "${exp}/noise/done"
    done
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    log "Stage 6: report -> ${expdir}/compare"
    step_cost=()  # the pre-training's seconds per step beside the methods'
    [ -z "${pretrain_config}" ] || [ ! -f "${pt_exp}/checkpoint.pth" ] || step_cost=(--step_cost_dirs "pretrain=${pt_exp}")
    # --sets and --snrs take one argument per set / SNR
    # shellcheck disable=SC2086
    python3 -m espnet_usr2.bin.usr2_compare_report --manifest "${manifest}" --ref_dir "${dumpdir}" \
        --warmup_dir "${expdir}/warmup" --decode_tags "${decode_tags[@]}" --bootstrap_tag "${bootstrap_tag}" \
        --sets ${test_sets} --snrs ${snrs} --out_dir "${expdir}/compare" "${step_cost[@]}" \
        --gpu_step_seconds ${gpu_step_seconds} --gpu_step_source "${gpu_step_source}" \
        --tta_metric "${tta_metric}" ${tta_target:+--target_acc "${tta_target}"}
    log "Wall-clock per stage and run (${timing}): $(awk -F'\t' 'NR > 1 { s += $2 } END { printf "%d min in all", s / 60 }' "${timing}")"
    cat "${expdir}/compare/results.md"
fi
