#!/usr/bin/env bash
# LRS2 data preparation (stage 1 of usr2.sh), from a local copy at ${LRS2} (db.sh):
#   ${LRS2}/main/<video>/<clip>.{mp4,txt}        train, val and test clips
#   ${LRS2}/pretrain/<video>/<clip>.{mp4,txt}    pretrain clips (.txt with word timings)
#   pretrain.txt train.txt val.txt test.txt      split lists, "<video>/<clip>[ <tag>]" per
#                                                line, in ${LRS2} or its parent directory
# Writes data/{pretrain,train,val,test}/ (video_src.scp, text, utt2spk, spk2utt,
# recordings.scp, segments); uttid "<video>_<split>_<clip>[_<NN>]", speaker = the video
# (LRS2 has no speaker labels; a broadcast is the closest unit). Pretrain clips longer
# than --max_len seconds are split at word boundaries and cut (scripts/cut_segments.sh).
# --landmarks_dir: precomputed landmarks mirroring ${LRS2} (main/<video>/<clip>.pkl,
# pretrain/...) -> data/lm.scp for stage 2 (run.sh passes --roi_opts "--landmarks data/lm.scp").
set -euo pipefail

max_len=16
landmarks_dir=""
. scripts/data_options.sh  # + --nj, --datadir; parses the options, reads db.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${LRS2}/main/<video>/<clip>.mp4 + <clip>.txt ("Text:  WORDS")
${LRS2}/pretrain/<video>/<clip>.mp4 + <clip>.txt
pretrain.txt train.txt val.txt test.txt (lines "<video>/<clip>") in ${LRS2} or its parent'
require_corpus LRS2 "${layout}" main pretrain
root="$(cd "${LRS2}" && pwd)"

# The split lists ship next to mvlrs_v1/ in the LRS2 download; accept both places.
list_of() {
    local f
    for f in "${root}/$1.txt" "$(dirname "${root}")/$1.txt"; do
        [ -f "${f}" ] && { echo "${f}"; return 0; }
    done
    corpus_error "LRS2='${LRS2}' (db.sh): split list $1.txt not found in it or its parent." "${layout}"
}

mkdir -p "${datadir}"
sets=""
for split in pretrain train val test; do
    list="$(list_of "${split}")"
    sub=main
    [ "${split}" = pretrain ] && sub=pretrain
    # "<video>/<clip>[ tag]" -> "<recording id> <speaker> <mp4>"; listed clips missing on disk are counted.
    find "${root}/${sub}" -mindepth 2 -maxdepth 2 -name '*.mp4' >"${datadir}/.exists"
    sed 's/\r$//' "${list}" | awk -v root="${root}/${sub}" -v sp="${split}" '
        FILENAME == ARGV[1] { have[$0] = 1; next }
        NF { n = split($1, p, "/"); if (n != 2) next
             f = root "/" p[1] "/" p[2] ".mp4"
             if (!(f in have)) { missing++; next }
             print p[1] "_" sp "_" p[2], p[1], f }
        END { if (missing) print "lrs2 data.sh: " missing " clips of the " sp " list are missing" > "/dev/stderr" }' \
        "${datadir}/.exists" - |
        LC_ALL=C sort -u -k1,1 \
        >"${datadir}/.${split}.list"
    [ -s "${datadir}/.${split}.list" ] ||
        corpus_error "LRS2='${LRS2}' (db.sh): no clip of ${list} exists under ${sub}/" "${layout}"
    len=0
    [ "${split}" = pretrain ] && len="${max_len}"
    scripts/lrs_text_data.sh --max_len "${len}" "${datadir}/.${split}.list" "${datadir}/${split}"
    rm -f "${datadir}/.${split}.list" "${datadir}/.exists"
    scripts/cut_segments.sh --nj "${nj}" "${datadir}/${split}"
    sets+=" ${split}"
done

if [ -n "${landmarks_dir}" ]; then
    # one argument per set
    # shellcheck disable=SC2086
    landmark_scp "${root}" "${landmarks_dir}" "${datadir}" lm.scp ${sets}
fi
for s in ${sets}; do echo "$(basename "$0"): $(data_dir_summary "${datadir}/${s}")"; done
