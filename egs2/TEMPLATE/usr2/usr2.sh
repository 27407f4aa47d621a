#!/usr/bin/env bash
# USR 2.0 recipe pipeline: talking-face videos -> one model for A, V and AV recognition.
#
# Stages (numbered as ESPnet's asr.sh where the meaning is the same):
#   1  data prep          local/data.sh -> data/<set>/{video_src.scp,text,utt2spk,spk2utt}
#   2  ROI + audio        mouth crops (96x96 gray, 25 fps) and 16 kHz wavs -> dump/extract/<set>/
#   3  format/dump        Kaldi-style lists per set -> dump/<set>/ (train sets: dump/org/<set>/)
#   4  length filter      min/max frames on labelled/unlabelled/valid sets -> dump/<set>/
#   5  tokenizer          SentencePiece + ESPnet token list -> data/token_list/bpe_<type><nbpe>/
#                         (skipped when --token_list and --bpemodel are given; both are checked)
#   6  LM text + stats    --use_lm true: labelled transcripts (+ --lm_train_text) -> <lm_exp>/data/,
#                         shape files -> <lm_exp>/stats/ (espnet2.bin.lm_train --collect_stats)
#   7  LM training        ESPnet's LM task (espnet2.bin.lm_train, --lm_config) on the token list -> <lm_exp>/
#   8  LM perplexity      on the valid set's transcripts -> <lm_exp>/perplexity_<valid_set>/ppl
#                         (6-7 are skipped when --lm_exp names a trained LM: <lm_exp>/config.yaml exists)
#  10  shape files        for the samplers, from the lists of stages 3-4 (utt2num_frames, the
#                         tokenised transcripts; no clip is decoded) -> <expdir>/stats_{lab,unlab}/
#  11  training           supervised, or semi-supervised with --unlabelled_sets -> <expdir>/<tag>/
#                         (11a: supervised warm-up -> <expdir>/<tag>_sup/ with --sup_train_config)
#                         (first, with --pretrain_config: self-supervised pre-training ->
#                         <expdir>/pretrain_<config>_<sets>/, its encoder starts the first run)
#  12  decoding           A, V, AV on --test_sets -> <expdir>/<tag>/<inference_tag>/<set>/
#                         (--use_lm true: shallow fusion with <lm_exp>'s LM, lm_weight from the config)
#  13  scoring            WER/CER per modality (sclite), <expdir>/<tag>/RESULTS.md
#  14  packing            <expdir>/<tag>/packed/<tag>.zip
# The model handed on (11a -> 11 -> 12 -> 14) is the file ESPnet's trainer writes for the
# run's own best_model_criterion / keep_nbest_models (<exp>/config.yaml), unless
# --inference_model / --sup_inference_model name one. --model_dir decodes a given model.
# Every stage prints what it does and what it wrote; a stage whose inputs are missing
# stops naming the missing file. Stages 10-11 write <expdir>/<tag>/run.sh and 12-13
# <expdir>/<tag>/<inference_tag>/run.sh: the command line that ran them, run from the recipe
# directory (options given to it are appended). Run from a recipe directory (egs2/<corpus>/usr2).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*"; }
die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
SECONDS=0

# ---------------------------------------------------------------- options (defaults)
# Every variable set in this block is an option (--name value or --name=value) and is
# listed in --help with its default (test/recipe/test_usr2_pipeline.py checks both).
stage=1
stop_stage=10000
skip_stages=""         # stage numbers to skip, e.g. "2 3"
ngpu=0                 # GPUs for training (and decoding when > 0)
num_nodes=1            # > 1: multi-node training through ESPnet's launcher (espnet2.bin.launch)
train_nthreads=""      # CPU threads of each training process (default: OMP_NUM_THREADS, i.e. path.sh's 1)
nj=4                   # parallel jobs for data preparation (stage 2)
roi_nproc=1            # processes per stage-2 job
inference_nj=4         # parallel jobs for decoding (stage 12)
python=python3
datadir=data
dumpdir=dump
expdir=exp

# Data sets (names of data/<set> written by local/data.sh)
labelled_sets=""       # labelled training set(s), e.g. "trainval"
unlabelled_sets=""     # unlabelled training set(s); non-empty: semi-supervised training
valid_set=""           # labelled validation set
test_sets=""           # sets to decode and score
local_data_opts=""     # options for local/data.sh
roi_opts=""            # extra options for usr2_prepare_roi (e.g. "--landmarks lm.scp")
allow_single_stream=false  # true: stage 2 keeps video-only and audio-only utterances; training sets
                       # drop them in stage 4, test sets decode each in the modalities it has

# Length filtering (stage 4), in video frames (25 per second)
min_frames=10
max_frames=1000

# Tokenizer (stage 5)
token_type=bpe
nbpe=1000
bpemode=unigram
bpe_train_text=""      # text file(s) to train on (default: the labelled sets' text)
token_list=""          # a given token list (with --bpemodel): stage 5 is skipped
bpemodel=""            # a given SentencePiece model (with --token_list)

# Language model (stages 6-8; decoding with it in stage 12)
use_lm=false           # true: train (or take --lm_exp's) LM and fuse it into the beam search
lm_config=""           # ESPnet LM config, e.g. conf/train_lm_transformer.yaml
lm_args=""             # extra arguments for espnet2.bin.lm_train
lm_train_text=""       # Kaldi text file(s) added to the labelled transcripts for LM training
lm_exp=""              # the LM directory (default: <expdir>/lm_<lm_config name>); one holding a
                       # config.yaml already is a given LM: stages 6-7 are skipped
inference_lm=""        # LM model file in lm_exp (default: the file its config selects)

# Training (stages 10, 11)
train_config=""        # USR 2.0 config, e.g. conf/train_usr2_base.yaml
train_args=""          # extra arguments for usr2_train (override the config)
tag=""                 # experiment name (default: from the config and data setting)
init_param=""          # --init_param for training (e.g. a supervised model)
pretrained_encoder=""  # an init file in this model's parameter names (usr2_import --encoder_only)
pretrain_config=""     # self-supervised pre-training first (stage 11), e.g. conf/pretrain_usr2_base.yaml;
                       # its encoder becomes --pretrained_encoder
pretrain_sets=""       # the audio-visual sets it reads (text unused; default: labelled + unlabelled sets)
pretrain_args=""       # extra arguments for the pre-training run
sup_train_config=""    # semi-supervised only: first train a supervised model with this
                       # config and start the semi-supervised run from it
sup_train_args=""      # extra arguments for that supervised warm-up run
sup_inference_model="" # the warm-up's model handed to stage 11 (default: from its config)
save_every_n_steps=0   # every training run (11, 11a, pre-training): a resume point every N steps too
stop_signals=""        # e.g. SIGTERM,SIGUSR1: such a signal stops training at a resume point, exit code 75
labelled_batch_frames=600    # semi-supervised batches, frames per device
unlabelled_batch_frames=4400
semi_type=usr2

# Decoding and scoring (stages 12, 13)
inference_config=""    # e.g. conf/decode_beam30.yaml
inference_args=""      # extra arguments for usr2_inference
inference_model=""     # default: the file the run's config selects (espnet_usr2/utils/model_selection.py)
inference_tag=""       # default: decode_<config name>_<model name>
model_dir=""           # decode a given model directory (config.yaml + model file) instead of training
modalities="v a av"
model_role=student     # student or teacher (the EMA teacher of semi-supervised runs)
score_cer=true

help_message="Usage: $0 --train_config <yaml> --labelled_sets <sets> --valid_set <set> --test_sets <sets> [options]

Stages: 1 data prep, 2 mouth ROI + audio, 3 format, 4 length filter, 5 tokenizer,
        6 LM text + stats, 7 LM training, 8 LM perplexity (6-8 with --use_lm true),
        10 shape files, 11 training, 12 decoding (A/V/AV), 13 scoring, 14 packing.
Options take a value (--name value or --name=value); defaults in brackets, [] = empty.
Stages 10-11 write <expdir>/<tag>/run.sh and stages 12-13 <expdir>/<tag>/<inference_tag>/run.sh,
the command line that ran them: run again (with more options appended, e.g. --stage 12), it
reproduces the experiment from the recipe directory.

General:
  --stage N                    first stage [${stage}]
  --stop_stage N               last stage [${stop_stage}]
  --skip_stages \"N M\"          stages to skip [${skip_stages}]
  --ngpu N                     GPUs for training and decoding [${ngpu}]; N > 1 runs ESPnet's
                               torch.distributed training on one node
  --num_nodes N                nodes for multi-node training [${num_nodes}]; jobs go through
                               espnet2.bin.launch with \${cuda_cmd} (cmd.sh)
  --train_nthreads N           CPU threads per training process [${train_nthreads}] (empty: OMP_NUM_THREADS,
                               path.sh's 1; CPU training on an idle machine: its core count)
  --nj N                       jobs for mouth-ROI extraction [${nj}]
  --roi_nproc N                processes per extraction job [${roi_nproc}]
  --inference_nj N             jobs for decoding [${inference_nj}]
  --python CMD                 Python interpreter of every stage [${python}]
  --datadir DIR                data directories [${datadir}]
  --dumpdir DIR                extracted and formatted data [${dumpdir}]
  --expdir DIR                 statistics and experiments [${expdir}]
Data:
  --labelled_sets \"A B\"        labelled training sets [${labelled_sets}]
  --unlabelled_sets \"C\"        unlabelled training sets (semi-supervised training) [${unlabelled_sets}]
  --valid_set V                validation set (labelled) [${valid_set}]
  --test_sets \"T1 T2\"          sets to decode and score [${test_sets}]
  --local_data_opts \"...\"      options passed to local/data.sh [${local_data_opts}]
  --roi_opts \"...\"             options passed to usr2_prepare_roi [${roi_opts}]
  --allow_single_stream BOOL   keep utterances with one stream [${allow_single_stream}]: a video without an
                               audio track (video-only), an audio file (audio-only); training sets keep
                               only audio-visual ones (stage 4), test sets decode V / A / AV as each allows
  --min_frames N               length filter of training sets, video frames [${min_frames}]
  --max_frames N               [${max_frames}]
Tokenizer (stage 5):
  --token_type bpe             [${token_type}] (the only type implemented)
  --nbpe N                     vocabulary size [${nbpe}]
  --bpemode unigram|bpe        SentencePiece model type [${bpemode}]
  --bpe_train_text \"F1 F2\"     Kaldi text files to train on [${bpe_train_text}] (empty: the labelled sets')
  --token_list FILE            a given ESPnet token list [${token_list}] and
  --bpemodel FILE              its SentencePiece model [${bpemodel}]: both given, stage 5 is skipped
                               (e.g. a released model's vocabulary); empty: stage 5's in
                               ${datadir}/token_list/${token_type}_${bpemode}${nbpe}/
Language model (stages 6-8, fused in stage 12):
  --use_lm true|false          train an LM on the transcripts and fuse it when decoding [${use_lm}]
                               (false: stages 6-8 are skipped and decoding uses no LM)
  --lm_config YAML             ESPnet LM config (TransformerLM or RNN LM), e.g.
                               conf/train_lm_transformer.yaml [${lm_config}]
  --lm_args \"...\"              extra espnet2.bin.lm_train arguments [${lm_args}]
  --lm_train_text \"F1 F2\"      Kaldi text files (uttid WORDS, normalised like the transcripts)
                               added to the labelled sets' text [${lm_train_text}]
  --lm_exp DIR                 the LM directory [${lm_exp}] (empty: --expdir/lm_<lm_config name>); a
                               directory with a config.yaml is an LM trained elsewhere: stages 6-7
                               are skipped and its token list must be this recipe's
  --inference_lm FILE          LM model file in --lm_exp [${inference_lm}] (empty: the file its
                               config's best_model_criterion selects, e.g. valid.loss.ave.pth)
Training (stages 10, 11):
  --train_config YAML          model/training config (required from stage 10) [${train_config}]
  --train_args \"...\"           extra usr2_train arguments [${train_args}]
  --tag NAME                   experiment name under --expdir [${tag}] (empty: from the config and
                               sets, or the name of --model_dir)
  --init_param PATH            initialise from a model (ESPnet --init_param syntax) [${init_param}]
  --pretrained_encoder FILE    start from a self-supervised encoder [${pretrained_encoder}]: an init
                               file in this model's parameter names (usr2_import --encoder_only);
                               it starts the warm-up (11a) or, without one, stage 11
  --pretrain_config YAML       self-supervised pre-training first, in stage 11 [${pretrain_config}]
                               (e.g. conf/pretrain_usr2_base.yaml); its encoder (usr2_import
                               --encoder_only of the last epoch) is handed on as --pretrained_encoder
  --pretrain_sets \"A B\"        sets pre-training reads (audio and video only) [${pretrain_sets}]
                               (empty: the labelled and unlabelled sets)
  --pretrain_args \"...\"        extra usr2_train arguments for pre-training [${pretrain_args}]
  --sup_train_config YAML      with --unlabelled_sets: supervised warm-up run first (stage 11a),
                               then the semi-supervised run starts from its model [${sup_train_config}]
  --sup_train_args \"...\"       extra arguments for the warm-up run [${sup_train_args}]
  --sup_inference_model FILE   the warm-up's model handed to stage 11 [${sup_inference_model}]
                               (empty: the file its config's best_model_criterion selects)
  --labelled_batch_frames N    semi-supervised batches: labelled frames per device [${labelled_batch_frames}]
  --unlabelled_batch_frames N  unlabelled frames per device [${unlabelled_batch_frames}]
  --semi_type usr2|usr1        semi-supervised objective (usr1: the USR baseline) [${semi_type}]
  --save_every_n_steps N       training writes a resume point every N optimiser steps, not only
                               per epoch; a rerun continues at that step [${save_every_n_steps}]
  --stop_signals LIST          e.g. SIGTERM,SIGUSR1: training stops at the next step with a resume
                               point and exit code 75 (cmd.sh: USR2_SLURM_REQUEUE=true requeues it)
                               [${stop_signals}]
Decoding and scoring (stages 12-14):
  --inference_config YAML      decoding config, e.g. conf/decode_beam30.yaml [${inference_config}]
  --inference_args \"...\"       extra usr2_inference arguments [${inference_args}]
  --inference_model FILE       model file in the experiment dir [${inference_model}] (empty: the file
                               the run's config selects, e.g. valid.acc_av.ave.pth for the paper
                               configs, valid.loss.best.pth for a single kept model)
  --inference_tag NAME         decoding directory [${inference_tag}] (empty: decode_<config>_<model>)
  --model_dir DIR              decode, score and pack a given model (config.yaml + model file, e.g.
                               usr2_import's output) [${model_dir}]; stages 5, 10, 11 are skipped,
                               results go to --expdir/<tag>
  --modalities \"v a av\"        modalities to decode [${modalities}]
  --model_role student|teacher which network of a semi-supervised model to decode [${model_role}]
  --score_cer true|false       also score the character error rate [${score_cer}]"

# The command line as given, for <exp>/run.sh (parse_options.sh consumes "$@").
run_cmd="$(printf '%q ' "$0" "$@")"
recipe_dir="$(pwd)"

[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] || die "cmd.sh not found: run from a recipe directory (egs2/<corpus>/usr2)"
. ./cmd.sh
. utils/parse_options.sh
. scripts/data_dir_utils.sh  # spk2utt_of
[ "$#" -eq 0 ] || die "unexpected arguments: $*"

run_stage() { # <n>: is stage n selected?
    [ "$1" -ge "${stage}" ] && [ "$1" -le "${stop_stage}" ] && ! [[ " ${skip_stages} " =~ [[:space:]]$1[[:space:]] ]]
}
need_file() { # <file> <what produces it>
    [ -s "$1" ] || die "missing input $1 (made by $2)"
}

# ----------------------------------------------------------------- derived names
for s in ${labelled_sets} ${unlabelled_sets} ${valid_set} ${test_sets}; do
    case "${s}" in
        extract | org | token_list) die "a data set cannot be named '${s}' (used by the pipeline)" ;;
    esac
done
# Several training sets are combined into one directory named after all of them.
lab_train="$(plus_joined "${labelled_sets}")"
unlab_train="$(plus_joined "${unlabelled_sets}")"
train_sets_all="${labelled_sets} ${unlabelled_sets} ${valid_set}"

# The tokenizer: stage 5's, or one given with --token_list and --bpemodel (stage 5 skipped).
bpedir="${datadir}/token_list/${token_type}_${bpemode}${nbpe}"
if [ -n "${token_list}" ] || [ -n "${bpemodel}" ]; then
    [ -n "${token_list}" ] && [ -n "${bpemodel}" ] \
        || die "give both --token_list and --bpemodel (a given vocabulary), or neither (stage 5 makes one)"
    tokenizer_given=true
else
    tokenizer_given=false
    bpemodel="${bpedir}/bpe.model"
    token_list="${bpedir}/tokens.txt"
fi

if [ -z "${tag}" ] && [ -n "${model_dir}" ]; then
    tag="$(basename "$(cd "${model_dir}" 2>/dev/null && pwd || echo "${model_dir}")")"
elif [ -z "${tag}" ] && [ -n "${train_config}" ]; then
    tag="$(basename "${train_config}" .yaml)_${lab_train:-nolab}"
    [ -n "${unlab_train}" ] && tag+="_semi_${unlab_train}"
    [ -n "${train_args}" ] && tag+="_$(echo "${train_args}" | sed -e 's/--//g' -e 's/[ =\/,]\+/_/g' | cut -c1-60)"
fi
exp="${expdir}/${tag}"
sup_exp="${expdir}/${tag}_sup"
stats_lab="${expdir}/stats_${lab_train:-none}"
stats_unlab="${expdir}/stats_unlab_${unlab_train:-none}"
# The language model (stages 6-8): trained here (default directory), or given (--lm_exp
# naming a directory that holds a trained LM's config.yaml).
case "${use_lm}" in true | false) ;; *) die "--use_lm must be true or false (got '${use_lm}')" ;; esac
case "${allow_single_stream}" in
    true) roi_opts+=" --allow_single_stream true" ;;
    false) ;;
    *) die "--allow_single_stream must be true or false (got '${allow_single_stream}')" ;;
esac
lm_given=false
if [ -z "${lm_exp}" ]; then
    lm_exp="${expdir}/lm_$(basename "${lm_config:-lm}" .yaml)"
elif [ -f "${lm_exp}/config.yaml" ]; then
    lm_given=true
fi
# Where stages 12 and 14 read the model: the experiment, or the directory --model_dir gives
# (its results still go to ${exp}).
model_src="${model_dir:-${exp}}"
if [ -n "${model_dir}" ]; then
    for n in 5 10 11; do
        if run_stage "${n}"; then
            log "--model_dir ${model_dir}: stages 5, 10 and 11 (tokenizer, training) are skipped"
            break
        fi
    done
    skip_stages+=" 5 10 11"
fi

# select_model <dir> <name or empty> <what it is for>: the path of the model file to hand
# on: <name> if given, else the file the directory's config.yaml selects (the same rule as
# ESPnet's trainer, espnet_usr2/utils/model_selection.py); dies naming the missing file
# and the .pth files that do exist.
select_model() {
    local name_opt=()
    [ -z "$2" ] || name_opt=(--name "$2")
    ${python} -m espnet_usr2.bin.usr2_model_selection --exp_dir "$1" "${name_opt[@]}" \
        || die "no model file for $3 in $1 (see above)"
}

# set_inference_tag <stage>: decode_<config>_<model> unless --inference_tag was given;
# records the command line (write_run_sh) in the decoding directory.
set_inference_tag() {
    [ -z "${inference_tag}" ] || { write_decode_run_sh; return 0; }
    [ -n "${inference_config}" ] || die "--inference_config (or --inference_tag) is required for stage $1"
    local _icfg _model
    _icfg="$(basename "${inference_config}" .yaml)"
    _model="$(select_model "${model_src}" "${inference_model}" "decoding")"
    _model="$(basename "${_model}")"
    inference_tag="decode_${_icfg#decode_}_${_model%.pth}"
    [ "${model_role}" = student ] || inference_tag+="_${model_role}"
    if [ "${use_lm}" = true ]; then  # as asr.sh: _lm_<LM dir>_<LM model>
        _model="$(basename "$(select_model "${lm_exp}" "${inference_lm}" "shallow fusion")")"
        inference_tag+="_lm_$(basename "${lm_exp}")_${_model%.pth}"
    fi
    write_decode_run_sh
}
write_decode_run_sh() {
    write_run_sh "${exp}/${inference_tag}"
    [ -e "${exp}/run.sh" ] || write_run_sh "${exp}"
}

# write_run_sh <dir>: <dir>/run.sh, the command line of this run, executed from the recipe
# directory; options given to it are appended and win (as asr.sh's <exp>/run.sh).
write_run_sh() {
    mkdir -p "$1"
    {
        echo "#!/usr/bin/env bash"
        echo "# Written by usr2.sh ($(date '+%Y-%m-%dT%H:%M:%S')): the command that ran this experiment."
        echo "# Options given to this script are appended, e.g. \"$1/run.sh --stage 12\" decodes again."
        echo "cd $(printf '%q' "${recipe_dir}") || exit 1"
        echo "${run_cmd}\"\$@\"; exit \$?"
    } >"$1/run.sh"
    chmod +x "$1/run.sh"
}

QUIET="--use_matplotlib false --use_tensorboard false --num_att_plot 0"

# ===================================================================== stage 1
if run_stage 1; then
    log "Stage 1: data preparation: local/data.sh ${local_data_opts}"
    [ -x local/data.sh ] || die "missing input local/data.sh (the recipe's data preparation)"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for s in ${train_sets_all} ${test_sets}; do
        need_file "${datadir}/${s}/video_src.scp" "local/data.sh"
    done
    log "Stage 1 wrote ${datadir}/<set>/{video_src.scp,text,utt2spk,spk2utt} for: ${train_sets_all} ${test_sets}"
fi

# ===================================================================== stage 2
if run_stage 2; then
    log "Stage 2: mouth-ROI and audio extraction (${nj} jobs x ${roi_nproc} processes)"
    for s in ${train_sets_all} ${test_sets}; do
        src="${datadir}/${s}"
        out="${dumpdir}/extract/${s}"
        need_file "${src}/video_src.scp" "stage 1"
        text_opt=""
        # Labelled sets: utterances without a transcript are skipped (and reported);
        # unlabelled sets need none.
        if [[ " ${unlabelled_sets} " =~ [[:space:]]${s}[[:space:]] ]]; then
            text_opt=""
        else
            need_file "${src}/text" "stage 1"
            text_opt="--text ${src}/text"
        fi
        n_utt=$(wc -l <"${src}/video_src.scp")
        _nj=$(min "${nj}" "${n_utt}")
        mkdir -p "${out}/log"
        log "  ${s}: ${n_utt} videos -> ${out} (log: ${out}/log/roi.*.log; a rerun resumes a killed run)"
        # One progress line for all jobs every 10 s on the console (the jobs log to files);
        # stopped once they return (and it stops by itself if this script dies).
        ${python} -m espnet_usr2.bin.usr2_prepare_roi --input "${src}/video_src.scp" --outdir "${out}" \
            --nj "${_nj}" --progress --progress_interval 10 &
        watcher=$!
        # shellcheck disable=SC2086
        ${decode_cmd} JOB=1:"${_nj}" "${out}/log/roi.JOB.log" \
            ${python} -m espnet_usr2.bin.usr2_prepare_roi --input "${src}/video_src.scp" \
                --outdir "${out}" ${text_opt} --nj "${_nj}" --job JOB --nproc "${roi_nproc}" ${roi_opts} \
            || { kill "${watcher}" 2>/dev/null; die "ROI extraction of ${s} failed: see ${out}/log/roi.*.log"; }
        kill "${watcher}" 2>/dev/null || true
        wait "${watcher}" 2>/dev/null || true
        # shellcheck disable=SC2086
        ${python} -m espnet_usr2.bin.usr2_prepare_roi --input "${src}/video_src.scp" --outdir "${out}" \
            ${text_opt} --nj "${_nj}" --merge ${roi_opts} >"${out}/log/merge.log" 2>&1 \
            || { tail -n 20 "${out}/log/merge.log" >&2; die "merging ${out} failed: see ${out}/log/merge.log"; }
        n_ok=$(wc -l <"${out}/utt2num_frames")
        n_skip=$(grep -vc '^uttid' "${out}/skipped.tsv" || true)
        log "  ${s}: ${n_ok} extracted, ${n_skip} skipped (reasons in ${out}/skipped.tsv)"
        # single-stream utterances (--roi_opts "--allow_single_stream true" / "--no_face audio_only")
        for only in video_only audio_only; do
            if [ -s "${out}/${only}.list" ]; then
                log "    of which $(wc -l <"${out}/${only}.list") ${only/_/-} (${out}/${only}.list)"
            fi
        done
        if [ "${n_skip}" -gt 0 ]; then
            grep -v '^uttid' "${out}/skipped.tsv" | cut -f3 | sort | uniq -c | sed 's/^/      /'
        fi
    done
    log "Stage 2 wrote ${dumpdir}/extract/<set>/{video.scp,wav.scp,utt2num_frames,skipped.tsv}"
fi

# ===================================================================== stage 3
# format_set <set> <dst>: the utterances stage 2 extracted, with every list the
# training and scoring tools read, in the same sorted order. utt2num_frames lists every
# kept utterance; a video-only one is not in wav.scp, an audio-only one not in video.scp.
format_set() {
    local s="$1" dst="$2" src="${datadir}/$1" ext="${dumpdir}/extract/$1" f
    if [ -s "${ext}/video_only.list" ] || [ -s "${ext}/audio_only.list" ]; then
        # single-stream utterances: one of the two lists may be empty (e.g. an audio-only set)
        [ -f "${ext}/video.scp" ] && [ -f "${ext}/wav.scp" ] || die "missing ${ext}/{video,wav}.scp (made by stage 2)"
    else
        need_file "${ext}/video.scp" "stage 2"
        need_file "${ext}/wav.scp" "stage 2"
    fi
    need_file "${ext}/utt2num_frames" "stage 2"
    need_file "${src}/utt2spk" "stage 1"
    mkdir -p "${dst}"
    for f in video.scp wav.scp utt2num_frames; do
        LC_ALL=C sort -k1,1 "${ext}/${f}" >"${dst}/${f}"
    done
    local keep="${dst}/utt2num_frames"
    awk 'NR == FNR { k[$1] = 1; next } ($1 in k)' "${keep}" "${src}/utt2spk" | LC_ALL=C sort -k1,1 >"${dst}/utt2spk"
    if [ -s "${src}/text" ]; then
        awk 'NR == FNR { k[$1] = 1; next } ($1 in k)' "${keep}" "${src}/text" | LC_ALL=C sort -k1,1 >"${dst}/text"
    else
        rm -f "${dst}/text"
    fi
    spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"
    cp "${ext}/skipped.tsv" "${dst}/skipped.tsv"
    log "  ${s}: $(wc -l <"${dst}/utt2num_frames") utterances -> ${dst}$(single_stream_counts "${dst}")"
}

# utt_list_of <dir>: the file listing every utterance of a data directory: utt2num_frames
# (stage 3 writes it; single-stream utterances are in only one of the scp files), or
# video.scp for a two-stream directory made without it.
utt_list_of() {
    if [ -f "$1/utt2num_frames" ]; then echo "$1/utt2num_frames"; else echo "$1/video.scp"; fi
}

# single_stream_counts <dir>: " (N video-only, M audio-only)" when the directory has any.
single_stream_counts() {
    local n_v n_a all
    all="$(utt_list_of "$1")"
    n_v=$(awk 'NR == FNR { k[$1] = 1; next } !($1 in k)' "$1/wav.scp" "${all}" | wc -l)
    n_a=$(awk 'NR == FNR { k[$1] = 1; next } !($1 in k)' "$1/video.scp" "${all}" | wc -l)
    [ "$((n_v + n_a))" -eq 0 ] || echo " (${n_v} video-only, ${n_a} audio-only)"
}

# long_modality <v|a|av|...>: the decode directory name of a modality.
long_modality() {
    case "$1" in v | video) echo video ;; a | audio) echo audio ;; av | audiovisual) echo audiovisual ;; *) echo "$1" ;; esac
}

# stream_utts <dir> <audio|video|audiovisual>: the utterances that have the modality's streams.
stream_utts() {
    case "$2" in
        audio) awk '{ print $1 }' "$1/wav.scp" ;;
        video) awk '{ print $1 }' "$1/video.scp" ;;
        audiovisual) awk 'NR == FNR { k[$1] = 1; next } ($1 in k) { print $1 }' "$1/wav.scp" "$1/video.scp" ;;
    esac
}

if run_stage 3; then
    log "Stage 3: format data directories"
    for s in ${train_sets_all}; do format_set "${s}" "${dumpdir}/org/${s}"; done
    for s in ${test_sets}; do format_set "${s}" "${dumpdir}/${s}"; done
    log "Stage 3 wrote {wav.scp,video.scp,text,utt2spk,spk2utt,utt2num_frames}" \
        "in ${dumpdir}/org/<training set> and ${dumpdir}/<test set>"
fi

# ===================================================================== stage 4
# filter_set <set> <labelled: true/false>: drop single-stream utterances (training needs
# the audio-visual view), too short/long ones (and, for labelled sets, empty transcripts);
# list every dropped one in dropped.tsv.
filter_set() {
    local s="$1" labelled="$2" src="${dumpdir}/org/$1" dst="${dumpdir}/$1" f
    need_file "${src}/utt2num_frames" "stage 3"
    [ "${labelled}" = false ] || need_file "${src}/text" "stage 3 (labelled set ${s} has no text)"
    mkdir -p "${dst}"
    local text_list=()  # a labelled set's transcripts: utterances without one are dropped
    [ "${labelled}" = true ] && text_list=("${src}/text")
    awk -v lo="${min_frames}" -v hi="${max_frames}" -v lab="${labelled}" -v out="${dst}/dropped.tsv" '
        BEGIN { print "uttid\tframes\treason" > out }
        FILENAME ~ /text$/ { if (NF > 1) has_text[$1] = 1; next }
        FILENAME ~ /wav\.scp$/ { has_audio[$1] = 1; next }
        FILENAME ~ /video\.scp$/ { has_video[$1] = 1; next }
        {   reason = ""
            if (!($1 in has_audio)) reason = "video-only"
            else if (!($1 in has_video)) reason = "audio-only"
            else if ($2 < lo) reason = "shorter than " lo " frames"
            else if ($2 > hi) reason = "longer than " hi " frames"
            else if (lab == "true" && !($1 in has_text)) reason = "empty transcript"
            if (reason == "") print $1; else print $1 "\t" $2 "\t" reason > out
        }' "${text_list[@]}" "${src}/wav.scp" "${src}/video.scp" \
        "${src}/utt2num_frames" >"${dst}/.keep"
    for f in video.scp wav.scp utt2num_frames utt2spk text; do
        [ -f "${src}/${f}" ] || continue
        awk 'NR == FNR { k[$1] = 1; next } ($1 in k)' "${dst}/.keep" "${src}/${f}" >"${dst}/${f}"
    done
    spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"
    local n_in n_out
    n_in=$(wc -l <"${src}/utt2num_frames")
    n_out=$(wc -l <"${dst}/.keep")
    rm -f "${dst}/.keep"
    [ "${n_out}" -gt 0 ] || die "stage 4 dropped every utterance of ${s}: see ${dst}/dropped.tsv"
    log "  ${s}: kept ${n_out} of ${n_in}, dropped $((n_in - n_out)) -> ${dst}"
    local n_single
    n_single=$(grep -Ec $'\t(video|audio)-only$' "${dst}/dropped.tsv" || true)
    [ "${n_single}" -eq 0 ] || log "  ${s}: dropped ${n_single} single-stream utterances (training needs both streams)"
    if [ "${n_in}" -gt "${n_out}" ]; then
        tail -n +2 "${dst}/dropped.tsv" | cut -f3 | sort | uniq -c | sed 's/^/      /'
    fi
}

# combine_sets <dst> <sets...>: one training directory from several.
combine_sets() {
    local dst="${dumpdir}/$1" f s
    shift
    mkdir -p "${dst}"
    for f in video.scp wav.scp utt2num_frames utt2spk text; do
        # "if", not "[ ] &&": a missing last file (unlabelled sets have no text) must not fail the loop
        for s in "$@"; do if [ -f "${dumpdir}/${s}/${f}" ]; then cat "${dumpdir}/${s}/${f}"; fi; done |
            LC_ALL=C sort -k1,1 >"${dst}/${f}"
        [ -s "${dst}/${f}" ] || rm -f "${dst}/${f}"
    done
    spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"
    log "  combined $* -> ${dst} ($(wc -l <"${dst}/video.scp") utterances)"
}

if run_stage 4; then
    log "Stage 4: length filtering (${min_frames} <= frames <= ${max_frames})"
    for s in ${labelled_sets} ${valid_set}; do filter_set "${s}" true; done
    for s in ${unlabelled_sets}; do filter_set "${s}" false; done
    # several sets are combined into one directory (one argument per set); one is read where it is
    # shellcheck disable=SC2086
    [[ "${lab_train}" != *+* ]] || combine_sets "${lab_train}" ${labelled_sets}
    # shellcheck disable=SC2086
    [[ "${unlab_train}" != *+* ]] || combine_sets "${unlab_train}" ${unlabelled_sets}
    log "Stage 4 wrote ${dumpdir}/<set>/ (+ dropped.tsv) for: ${train_sets_all}"
fi

# ===================================================================== stage 5
# check_token_list <file>: ESPnet's layout, <blank> first and <sos/eos> last.
check_token_list() {
    need_file "$1" "--token_list"
    [ "$(head -n 1 "$1")" = "<blank>" ] && [ "$(tail -n 1 "$1")" = "<sos/eos>" ] \
        || die "token list $1 must start with <blank> and end with <sos/eos> (ESPnet's token list)"
}

if run_stage 5 && [ "${tokenizer_given}" = true ]; then
    check_token_list "${token_list}"
    need_file "${bpemodel}" "--bpemodel"
    log "Stage 5 skipped: --token_list ${token_list} ($(wc -l <"${token_list}") tokens) and --bpemodel ${bpemodel} given"
elif run_stage 5; then
    [ "${token_type}" = bpe ] || die "--token_type ${token_type}: only bpe is implemented"
    texts="${bpe_train_text}"
    if [ -z "${texts}" ]; then
        for s in ${labelled_sets}; do texts+=" ${dumpdir}/${s}/text"; done
    fi
    [ -n "${texts// /}" ] || die "stage 5 needs --labelled_sets or --bpe_train_text"
    for f in ${texts}; do need_file "${f}" "stage 4"; done
    log "Stage 5: SentencePiece ${bpemode} tokenizer (nbpe ${nbpe}) on${texts}"
    # shellcheck disable=SC2086
    ${python} pyscripts/make_bpe.py --text ${texts} --outdir "${bpedir}" --nbpe "${nbpe}" --model_type "${bpemode}"
    log "Stage 5 wrote ${bpemodel} and ${token_list}"
fi

# ================================================================ stages 6-8: language model
lm_data="${lm_exp}/data"
lm_stats="${lm_exp}/stats"
# check_lm_tokens: the LM in ${lm_exp} predicts this recipe's tokens (same list, same order).
check_lm_tokens() {
    need_file "${lm_exp}/config.yaml" "stage 7, or an LM trained elsewhere given with --lm_exp"
    need_file "${token_list}" "$([ "${tokenizer_given}" = true ] && echo "--token_list" || echo "stage 5")"
    ${python} -m espnet_usr2.bin.usr2_check_lm "${lm_exp}/config.yaml" "${token_list}" || die "the LM in ${lm_exp} cannot be used with ${token_list}"
}
# lm_job <log> <args...>: one espnet2.bin.lm_train run (on --ngpu GPUs of one node).
lm_job() {
    local logfile="$1" dist=""
    shift
    [ "${ngpu}" -gt 1 ] && dist="--multiprocessing_distributed true"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${logfile}" \
        ${python} -m espnet2.bin.lm_train --ngpu "${ngpu}" ${dist} --use_preprocessor true --token_type bpe \
            --token_list "${token_list}" --bpemodel "${bpemodel}" --fold_length 150 ${QUIET} "$@" \
        || { tail -n 30 "${logfile}" >&2; die "LM training failed: see ${logfile}"; }
}

if [ "${use_lm}" = true ] && [ "${lm_given}" = true ] && { run_stage 6 || run_stage 7; }; then
    check_lm_tokens
    log "Stages 6-7 skipped: --lm_exp ${lm_exp} holds a trained LM (its token list is ${token_list}'s)"
fi

if [ "${use_lm}" = true ] && [ "${lm_given}" = false ] && run_stage 6; then
    [ -n "${lm_config}" ] || die "--lm_config is required for stage 6 (e.g. conf/train_lm_transformer.yaml)"
    need_file "${lm_config}" "--lm_config"
    [ -n "${valid_set}" ] || die "--valid_set is required for stage 6 (the LM's validation text)"
    need_file "${token_list}" "$([ "${tokenizer_given}" = true ] && echo "--token_list" || echo "stage 5")"
    need_file "${bpemodel}" "$([ "${tokenizer_given}" = true ] && echo "--bpemodel" || echo "stage 5")"
    need_file "${dumpdir}/${valid_set}/text" "stage 4"
    texts=""
    for s in ${labelled_sets}; do texts+=" ${dumpdir}/${s}/text"; need_file "${dumpdir}/${s}/text" "stage 4"; done
    for f in ${lm_train_text}; do need_file "${f}" "--lm_train_text"; done
    [ -n "${texts// /}${lm_train_text// /}" ] || die "stage 6 needs --labelled_sets or --lm_train_text"
    mkdir -p "${lm_data}" "${lm_stats}/logdir"
    # Utterance ids get the number of their file: the same id in two files must not collide
    # in ESPnet's text reader. Lines without words are left out.
    i=0
    for f in ${texts} ${lm_train_text}; do
        i=$((i + 1))
        awk -v p="${i}-" 'NF > 1 { $1 = p $1; print }' "${f}"
    done >"${lm_data}/train.txt"
    awk 'NF > 1' "${dumpdir}/${valid_set}/text" >"${lm_data}/valid.txt"
    log "Stage 6: LM text: $(wc -l <"${lm_data}/train.txt") sentences from${texts} ${lm_train_text}," \
        "valid: ${valid_set}; collect stats -> ${lm_stats} (log: ${lm_stats}/logdir/stats.log)"
    # shellcheck disable=SC2086
    ${train_cmd} "${lm_stats}/logdir/stats.log" \
        ${python} -m espnet2.bin.lm_train --collect_stats true --use_preprocessor true --config "${lm_config}" \
            --token_type bpe --token_list "${token_list}" --bpemodel "${bpemodel}" ${QUIET} \
            --train_data_path_and_name_and_type "${lm_data}/train.txt,text,text" \
            --valid_data_path_and_name_and_type "${lm_data}/valid.txt,text,text" \
            --train_shape_file "${lm_data}/train.txt" --valid_shape_file "${lm_data}/valid.txt" \
            --output_dir "${lm_stats}" ${lm_args} \
        || { tail -n 30 "${lm_stats}/logdir/stats.log" >&2; die "LM collect stats failed: see ${lm_stats}/logdir/stats.log"; }
    # the vocabulary size as the last dimension: batch_type numel counts tokens x vocabulary (as asr.sh)
    for p in train valid; do
        awk -v n="$(wc -l <"${token_list}")" '{ print $0 "," n }' "${lm_stats}/${p}/text_shape" \
            >"${lm_stats}/${p}/text_shape.bpe"
    done
    log "Stage 6 wrote ${lm_data}/{train,valid}.txt and ${lm_stats}/{train,valid}/text_shape.bpe"
fi

if [ "${use_lm}" = true ] && [ "${lm_given}" = false ] && run_stage 7; then
    [ -n "${lm_config}" ] || die "--lm_config is required for stage 7 (e.g. conf/train_lm_transformer.yaml)"
    need_file "${lm_config}" "--lm_config"
    need_file "${lm_stats}/train/text_shape.bpe" "stage 6"
    need_file "${lm_stats}/valid/text_shape.bpe" "stage 6"
    log "Stage 7: LM training (${lm_config}) on ${lm_data}/train.txt -> ${lm_exp} (log: ${lm_exp}/train.log)"
    # shellcheck disable=SC2086
    lm_job "${lm_exp}/train.log" --config "${lm_config}" --resume true \
        --train_data_path_and_name_and_type "${lm_data}/train.txt,text,text" \
        --valid_data_path_and_name_and_type "${lm_data}/valid.txt,text,text" \
        --train_shape_file "${lm_stats}/train/text_shape.bpe" --valid_shape_file "${lm_stats}/valid/text_shape.bpe" \
        --output_dir "${lm_exp}" ${lm_args}
    lm_model="$(select_model "${lm_exp}" "${inference_lm}" "the LM (stages 8, 12; see ${lm_exp}/train.log)")"
    log "Stage 7 wrote ${lm_exp}/{config.yaml,train.log} and the LM to use, ${lm_model}"
fi

if [ "${use_lm}" = true ] && run_stage 8; then
    check_lm_tokens
    [ -n "${valid_set}" ] || die "--valid_set is required for stage 8 (the perplexity's text)"
    need_file "${dumpdir}/${valid_set}/text" "stage 4"
    lm_model="$(select_model "${lm_exp}" "${inference_lm}" "the perplexity (stage 8)")"
    out="${lm_exp}/perplexity_${valid_set}"
    mkdir -p "${out}"
    awk 'NF > 1' "${dumpdir}/${valid_set}/text" >"${out}/text"
    log "Stage 8: perplexity of ${lm_model} on ${valid_set} -> ${out} (log: ${out}/lm_calc_perplexity.log)"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "$(min "${ngpu}" 1)" "${out}/lm_calc_perplexity.log" \
        ${python} -m espnet2.bin.lm_calc_perplexity --ngpu "$(min "${ngpu}" 1)" \
            --data_path_and_name_and_type "${out}/text,text,text" --train_config "${lm_exp}/config.yaml" \
            --model_file "${lm_model}" --output_dir "${out}" \
        || { tail -n 30 "${out}/lm_calc_perplexity.log" >&2; die "perplexity failed: see ${out}/lm_calc_perplexity.log"; }
    log "Stage 8 wrote ${out}/ppl: perplexity $(cat "${out}/ppl") (per token, ${valid_set})"
fi

# ================================================================ training helpers
# data_opts <option> <dir> [with_text]: the three data entries of a directory.
data_opts() {
    local opt="$1" d="$2"
    echo "${opt} ${d}/wav.scp,speech,sound ${opt} ${d}/video.scp,video,roi_video"
    [ "${3:-true}" = true ] && echo "${opt} ${d}/text,text,text"
    true
}
check_train_inputs() {
    [ -n "${train_config}" ] || die "--train_config is required from stage 10"
    need_file "${train_config}" "--train_config"
    [ -n "${lab_train}" ] || die "--labelled_sets is required"
    [ -n "${valid_set}" ] || die "--valid_set is required"
    need_file "${token_list}" "$([ "${tokenizer_given}" = true ] && echo "--token_list" || echo "stage 5")"
    need_file "${bpemodel}" "$([ "${tokenizer_given}" = true ] && echo "--bpemodel" || echo "stage 5")"
    local d
    for d in "${dumpdir}/${lab_train}" "${dumpdir}/${valid_set}"; do
        need_file "${d}/wav.scp" "stage 4"; need_file "${d}/video.scp" "stage 4"; need_file "${d}/text" "stage 4"
    done
    if [ -n "${unlab_train}" ]; then
        need_file "${dumpdir}/${unlab_train}/wav.scp" "stage 4"
        need_file "${dumpdir}/${unlab_train}/video.scp" "stage 4"
    fi
}
token_opts="--token_list ${token_list} --token_type bpe --bpemodel ${bpemodel}"

# train_job <outdir> <log> <args...>: one usr2_train run through the job runner, on one
# node (ESPnet spawns --ngpu processes with --multiprocessing_distributed) or several
# (ESPnet's launcher starts one process per node through ${cuda_cmd}).
train_job() {
    local out="$1" logfile="$2"
    shift 2
    local dist=""
    [ "${ngpu}" -gt 1 ] && dist="--multiprocessing_distributed true"
    # resume points for preemptible clusters (not in the experiment's name: they change no result)
    dist+=" --save_every_n_steps ${save_every_n_steps}"
    [ -z "${stop_signals}" ] || dist+=" --stop_signals ${stop_signals}"
    mkdir -p "${out}"
    # a rerun (it resumes, or finds the training finished) keeps the earlier runs' logs
    if [ -s "${logfile}" ]; then
        local n=1
        while [ -e "${logfile%.log}.${n}.log" ]; do n=$((n + 1)); done
        mv "${logfile}" "${logfile%.log}.${n}.log"
        log "kept the earlier ${logfile} as ${logfile%.log}.${n}.log"
    fi
    # the job runners pass the environment on; only training gets more than path.sh's 1 thread
    local OMP_NUM_THREADS="${train_nthreads:-${OMP_NUM_THREADS:-1}}"
    export OMP_NUM_THREADS
    if [ "${num_nodes}" -gt 1 ]; then
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.launch --cmd "${cuda_cmd} --name ${tag}" --log "${logfile}" \
            --ngpu "${ngpu}" --num_nodes "${num_nodes}" --init_file_prefix "${out}/.dist_init_" \
            --multiprocessing_distributed true -- \
            ${python} -m espnet_usr2.bin.usr2_train --ngpu "${ngpu}" ${dist} "$@" --output_dir "${out}" \
            || die "training failed: see ${logfile}"
    else
        # shellcheck disable=SC2086
        ${cuda_cmd} --gpu "${ngpu}" "${logfile}" \
            ${python} -m espnet_usr2.bin.usr2_train --ngpu "${ngpu}" ${dist} "$@" --output_dir "${out}" \
            || { tail -n 30 "${logfile}" >&2; die "training failed: see ${logfile}"; }
    fi
}

# Stages 10-13 leave the command line that ran them, as asr.sh does: training (10, 11) in
# <exp>/run.sh, decoding and scoring (12, 13) in <exp>/<inference_tag>/run.sh (and in
# <exp>/run.sh when no training wrote one, e.g. with --model_dir).
if [ -n "${tag}" ] && { run_stage 10 || run_stage 11; }; then
    write_run_sh "${exp}"
fi

# ===================================================================== stage 10
if run_stage 10; then
    check_train_inputs
    log "Stage 10: shape files of ${lab_train} (from its lists) -> ${stats_lab}"
    mkdir -p "${stats_lab}/logdir"
    # shellcheck disable=SC2046,SC2086
    ${train_cmd} "${stats_lab}/logdir/stats.log" \
        ${python} -m espnet_usr2.bin.usr2_shape_files --config "${train_config}" ${token_opts} \
            ${QUIET} $(data_opts --train_data_path_and_name_and_type "${dumpdir}/${lab_train}") \
            $(data_opts --valid_data_path_and_name_and_type "${dumpdir}/${valid_set}") \
            --train_shape_file "${dumpdir}/${lab_train}/wav.scp" --valid_shape_file "${dumpdir}/${valid_set}/wav.scp" \
            --output_dir "${stats_lab}" ${train_args} \
        || { tail -n 30 "${stats_lab}/logdir/stats.log" >&2; die "shape files failed: see ${stats_lab}/logdir/stats.log"; }
    if [ -n "${unlab_train}" ]; then
        log "Stage 10: shape files of unlabelled ${unlab_train} -> ${stats_unlab}"
        mkdir -p "${stats_unlab}/logdir"
        # shellcheck disable=SC2046,SC2086
        ${train_cmd} "${stats_unlab}/logdir/stats.log" \
            ${python} -m espnet_usr2.bin.usr2_shape_files --config "${train_config}" ${token_opts} \
                ${QUIET} $(data_opts --train_data_path_and_name_and_type "${dumpdir}/${unlab_train}" false) \
                $(data_opts --valid_data_path_and_name_and_type "${dumpdir}/${valid_set}") \
                --train_shape_file "${dumpdir}/${unlab_train}/wav.scp" --valid_shape_file "${dumpdir}/${valid_set}/wav.scp" \
                --output_dir "${stats_unlab}" ${train_args} \
            || { tail -n 30 "${stats_unlab}/logdir/stats.log" >&2; die "shape files failed: see ${stats_unlab}/logdir/stats.log"; }
    fi
    log "Stage 10 wrote ${stats_lab}/{train,valid}/{speech,video,text}_shape$([ -n "${unlab_train}" ] && echo " and ${stats_unlab}/train/video_shape")"
fi

# run_pretraining: self-supervised pre-training (model: usr2_pretrain) on --pretrain_sets
# without their text, in <expdir>/pretrain_<config>_<sets>; sets pretrained_encoder to the
# encoder file of its last epoch, checked against the first recognition run's config.
run_pretraining() {
    [ -z "${pretrained_encoder}" ] || die "give --pretrain_config or --pretrained_encoder, not both"
    need_file "${pretrain_config}" "--pretrain_config"
    local sets pt_train pt_exp pt_stats s
    sets="${pretrain_sets:-${labelled_sets} ${unlabelled_sets}}"
    for s in ${sets}; do
        need_file "${dumpdir}/${s}/video.scp" "stage 4 (a --pretrain_sets set must be a labelled or unlabelled set)"
    done
    pt_train="$(plus_joined "${sets}")"
    # one set is read where it is; several are combined (one argument per set)
    # shellcheck disable=SC2086
    [[ "${pt_train}" != *+* ]] || combine_sets "${pt_train}" ${sets}
    pt_exp="${expdir}/pretrain_$(basename "${pretrain_config}" .yaml)_${pt_train}"
    pt_stats="${expdir}/stats_pretrain_${pt_train}"
    local data
    data="$(data_opts --train_data_path_and_name_and_type "${dumpdir}/${pt_train}" false)
        $(data_opts --valid_data_path_and_name_and_type "${dumpdir}/${valid_set}" false)"
    if [ ! -s "${pt_stats}/train/video_shape" ]; then
        log "Stage 11 (pre-training): shape files of ${pt_train} -> ${pt_stats}"
        mkdir -p "${pt_stats}/logdir"
        # shellcheck disable=SC2086
        ${train_cmd} "${pt_stats}/logdir/stats.log" \
            ${python} -m espnet_usr2.bin.usr2_shape_files --config "${pretrain_config}" ${QUIET} \
                ${data} --train_shape_file "${dumpdir}/${pt_train}/wav.scp" \
                --valid_shape_file "${dumpdir}/${valid_set}/wav.scp" --output_dir "${pt_stats}" ${pretrain_args} \
            || { tail -n 30 "${pt_stats}/logdir/stats.log" >&2; die "shape files failed: see ${pt_stats}/logdir/stats.log"; }
    fi
    log "Stage 11 (pre-training): self-supervised on ${pt_train} (${pretrain_config}) -> ${pt_exp} (log: ${pt_exp}/train.log)"
    # shellcheck disable=SC2086
    train_job "${pt_exp}" "${pt_exp}/train.log" --config "${pretrain_config}" ${QUIET} --resume true ${data} \
        --train_shape_file "${pt_stats}/train/video_shape" --train_shape_file "${pt_stats}/train/speech_shape" \
        --valid_shape_file "${pt_stats}/valid/video_shape" --valid_shape_file "${pt_stats}/valid/speech_shape" \
        ${pretrain_args}
    need_file "${pt_exp}/latest.pth" "the pre-training run (see ${pt_exp}/train.log)"
    ${python} -m espnet_usr2.bin.usr2_import --encoder_only --checkpoint "${pt_exp}/latest.pth" \
        --config "${sup_train_config:-${train_config}}" --out_dir "${pt_exp}/encoder" --overwrite \
        || die "the encoder of ${pt_exp}/latest.pth does not fit ${sup_train_config:-${train_config}} (see above)"
    pretrained_encoder="${pt_exp}/encoder/encoder.pth"
    log "Stage 11 (pre-training) wrote ${pretrained_encoder}: the first recognition run starts from it"
}

# ===================================================================== stage 11
if run_stage 11; then
    check_train_inputs
    need_file "${stats_lab}/train/video_shape" "stage 10"
    need_file "${stats_lab}/valid/video_shape" "stage 10"
    sup_common="${token_opts} ${QUIET} --resume true
        $(data_opts --train_data_path_and_name_and_type "${dumpdir}/${lab_train}")
        $(data_opts --valid_data_path_and_name_and_type "${dumpdir}/${valid_set}")
        --train_shape_file ${stats_lab}/train/video_shape --valid_shape_file ${stats_lab}/valid/video_shape"
    [ -z "${pretrain_config}" ] || run_pretraining  # sets pretrained_encoder
    # The first run (the warm-up, or stage 11 without one) starts from --pretrained_encoder
    # and/or --init_param (ESPnet loads them in this order; the EMA teacher is copied from
    # the student when semi-supervised training starts, so it starts from them too).
    init_files="${pretrained_encoder} ${init_param}"
    [ -z "${pretrained_encoder}" ] || need_file "${pretrained_encoder}" "--pretrained_encoder (e.g. usr2_import --encoder_only)"
    init_opt=""
    [ -z "${init_files// /}" ] || init_opt="--init_param ${init_files}"
    if [ -z "${unlab_train}" ]; then
        log "Stage 11: supervised training on ${lab_train} (${train_config}) -> ${exp} (log: ${exp}/train.log)"
        # shellcheck disable=SC2086
        train_job "${exp}" "${exp}/train.log" --config "${train_config}" ${sup_common} ${init_opt} ${train_args}
    else
        need_file "${stats_unlab}/train/video_shape" "stage 10"
        if [ -n "${sup_train_config}" ]; then
            need_file "${sup_train_config}" "--sup_train_config"
            log "Stage 11a: supervised warm-up on ${lab_train} (${sup_train_config}) -> ${sup_exp} (log: ${sup_exp}/train.log)"
            # shellcheck disable=SC2086
            train_job "${sup_exp}" "${sup_exp}/train.log" --config "${sup_train_config}" ${sup_common} ${init_opt} ${sup_train_args}
            sup_model="$(select_model "${sup_exp}" "${sup_inference_model}" "the semi-supervised run (stage 11)")"
            log "Stage 11a: the semi-supervised run starts from ${sup_model}"
            init_opt="--init_param ${sup_model}"
        fi
        log "Stage 11: semi-supervised training, labelled ${lab_train} + unlabelled ${unlab_train}" \
            "(${train_config}) -> ${exp} (log: ${exp}/train.log)"
        # shellcheck disable=SC2046,SC2086
        train_job "${exp}" "${exp}/train.log" --config "${train_config}" ${sup_common} \
            --semi "${semi_type}" --batch_type semi_supervised \
            --labelled_batch_frames "${labelled_batch_frames}" --unlabelled_batch_frames "${unlabelled_batch_frames}" \
            $(data_opts --unlabelled_data_path_and_name_and_type "${dumpdir}/${unlab_train}" false) \
            --unlabelled_shape_file "${stats_unlab}/train/video_shape" ${init_opt} ${train_args}
    fi
    final_model="$(select_model "${exp}" "${inference_model}" "decoding (stage 12; see ${exp}/train.log)")"
    log "Stage 11 wrote ${exp}/{config.yaml,checkpoint.pth,train.log} and the model to decode, ${final_model}"
fi

# ===================================================================== stage 12
if run_stage 12; then
    [ -n "${inference_config}" ] || die "--inference_config is required for stage 12"
    need_file "${inference_config}" "--inference_config"
    need_file "${model_src}/config.yaml" "$([ -n "${model_dir}" ] && echo "--model_dir" || echo "stage 11")"
    model_file="$(select_model "${model_src}" "${inference_model}" "decoding (stage 12)")"
    set_inference_tag 12
    # One GPU per decoding job (when any): jobs are parallel over data splits.
    gpu_opt=""
    dec_gpu=0
    [ "${ngpu}" -gt 0 ] && gpu_opt="--ngpu 1" && dec_gpu=1
    # Shallow fusion: the LM files; its weight is the decoding config's lm_weight (or --inference_args)
    lm_opts=""
    if [ "${use_lm}" = true ]; then
        check_lm_tokens
        lm_model="$(select_model "${lm_exp}" "${inference_lm}" "shallow fusion (stage 12)")"
        lm_opts="--lm_train_config ${lm_exp}/config.yaml --lm_file ${lm_model}"
        log "Stage 12: shallow fusion with ${lm_model} (lm_weight: ${inference_config} or --inference_args;" \
            "0 means no LM)"
    fi
    for s in ${test_sets}; do
        d="${dumpdir}/${s}"
        # a set may hold single-stream utterances (one of the two lists may even be empty)
        [ -f "${d}/wav.scp" ] && [ -f "${d}/video.scp" ] || die "missing ${d}/{wav,video}.scp (made by stage 3)"
        need_file "$(utt_list_of "${d}")" "stage 3"
        out="${exp}/${inference_tag}/${s}"
        logdir="${out}/logdir"
        rm -rf "${logdir}"
        mkdir -p "${logdir}"
        ${python} -m espnet_usr2.bin.usr2_decode_splits split --scp "$(utt_list_of "${d}")" --nj "${inference_nj}" --out_dir "${logdir}" >/dev/null
        _nj=$(find "${logdir}" -maxdepth 1 -name 'keys.*.scp' | wc -l)
        log "Stage 12: decoding ${s} (${modalities}) with ${model_file} and ${inference_config}, ${_nj} jobs" \
            "-> ${out} (logs: ${logdir}/decode.*.log)"
        # shellcheck disable=SC2086
        ${decode_cmd} --gpu "${dec_gpu}" JOB=1:"${_nj}" "${logdir}/decode.JOB.log" \
            ${python} -m espnet_usr2.bin.usr2_inference --config "${inference_config}" \
                --train_config "${model_src}/config.yaml" --model_file "${model_file}" \
                --model_role "${model_role}" --modalities ${modalities} ${gpu_opt} --allow_single_stream true \
                --data_path_and_name_and_type "${d}/wav.scp,speech,sound" \
                --data_path_and_name_and_type "${d}/video.scp,video,roi_video" \
                --key_file "${logdir}/keys.JOB.scp" --output_dir "${logdir}/output.JOB" ${lm_opts} ${inference_args} \
            || die "decoding failed: see ${logdir}/decode.*.log"
        # shellcheck disable=SC2046
        ${python} -m espnet_usr2.bin.usr2_decode_splits merge --out_dir "${out}" $(seq -f "${logdir}/output.%g" 1 "${_nj}") >/dev/null
        log "  wrote ${out}/{video,audio,audiovisual}/text:$(for m in ${modalities}; do m="$(long_modality "${m}")"
            echo -n " ${m} $(wc -l <"${out}/${m}/text")"; done) of $(wc -l <"$(utt_list_of "${d}")") utterances$(
            single_stream_counts "${d}")"
    done
fi

# ===================================================================== stage 13
if run_stage 13; then
    for s in ${test_sets}; do
        need_file "${dumpdir}/${s}/text" "stage 3"
        need_file "${dumpdir}/${s}/utt2spk" "stage 3"
    done
    set_inference_tag 13
    cer_opt=""
    [ "${score_cer}" = true ] && cer_opt="--cer"
    for s in ${test_sets}; do
        for m in ${modalities}; do
            m="$(long_modality "${m}")"
            d="${exp}/${inference_tag}/${s}/${m}"
            [ -f "${d}/text" ] || die "missing input ${d}/text (made by stage 12)"
            # each modality is scored over the utterances that have its streams
            n_all=$(wc -l <"$(utt_list_of "${dumpdir}/${s}")")
            stream_utts "${dumpdir}/${s}" "${m}" >"${d}/.scored_utts"
            n_m=$(wc -l <"${d}/.scored_utts")
            utt_opt=()
            [ "${n_m}" -eq "${n_all}" ] || utt_opt=(--utt_list "${d}/.scored_utts")
            if [ "${n_m}" -eq 0 ]; then
                rm -f "${d}/.scored_utts"
                log "Stage 13: ${s} ${m}: no utterance has its streams, not scored"
                continue
            fi
            ${python} -m espnet_usr2.bin.usr2_score --ref_text "${dumpdir}/${s}/text" --hyp_text "${d}/text" \
                --utt2spk "${dumpdir}/${s}/utt2spk" --out_dir "${d}" ${cer_opt} "${utt_opt[@]}" >"${d}/score.log" 2>&1 \
                || { cat "${d}/score.log" >&2; die "scoring ${d} failed"; }
            rm -f "${d}/.scored_utts"
            log "Stage 13: scored ${s} ${m} (${n_m} of ${n_all} utterances):" \
                "$(grep -E 'Sum/Avg' "${d}/score_wer/result.txt" | head -n 1 | tr -s ' ')"
        done
    done
    ${python} -m espnet_usr2.bin.usr2_score --results "${exp}" --out "${exp}/RESULTS.md" >/dev/null 2>"${exp}/results.log" \
        || { cat "${exp}/results.log" >&2; die "collecting ${exp}/RESULTS.md failed"; }
    log "Stage 13 wrote ${exp}/${inference_tag}/<set>/<modality>/score_{wer,cer}/result.txt and ${exp}/RESULTS.md"
    cat "${exp}/RESULTS.md"
fi

# ===================================================================== stage 14
if run_stage 14; then
    need_file "${model_src}/config.yaml" "$([ -n "${model_dir}" ] && echo "--model_dir" || echo "stage 11")"
    model_file="$(select_model "${model_src}" "${inference_model}" "packing (stage 14)")"
    pack_opts=""
    # config.yaml holds the token list itself; tokens.txt and bpe.model travel along for
    # users of the recipe layout.
    [ -f "${token_list}" ] && pack_opts+=" --option ${token_list}"
    [ -f "${exp}/RESULTS.md" ] && pack_opts+=" --option ${exp}/RESULTS.md"
    [ -n "${inference_config}" ] && [ -f "${inference_config}" ] && pack_opts+=" --option ${inference_config}"
    log "Stage 14: packing ${model_file} -> ${exp}/packed/${tag}.zip"
    # shellcheck disable=SC2086
    ${python} pyscripts/pack_model.py --train_config "${model_src}/config.yaml" --model_file "${model_file}" \
        --outpath "${exp}/packed/${tag}.zip" ${pack_opts}
    log "Stage 14 wrote ${exp}/packed/${tag}.zip"
fi

log "Successfully finished stages ${stage}-${stop_stage} in ${SECONDS} s"
