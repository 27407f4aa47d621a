#!/usr/bin/env bash
# LRS3 data preparation (stage 1 of usr2.sh), from a local copy at ${LRS3} (db.sh):
#   ${LRS3}/{pretrain,trainval,test}/<speaker>/<clip>.{mp4,txt}
#
# Writes data/{pretrain,trainval,valid,test}[,vox2]/ (video_src.scp, text, utt2spk,
# spk2utt, recordings.scp, segments). uttid "<speaker>_<split>_<clip>[_<NN>]": the split
# keeps ids unique when pretrain and trainval are combined (they share speakers and clip
# numbers). Pretrain clips longer than --max_len seconds are split at word boundaries
# (scripts/lrs_text_data.sh) and cut into files (scripts/cut_segments.sh), because the
# ROI extraction of stage 2 reads whole files. trainval and test are never split.
# --valid_size utterances of trainval, evenly spaced, are held out as data/valid.
# --landmarks_dir: precomputed landmarks mirroring the corpus tree (<split>/<speaker>/
# <clip>.pkl, the public LRS3 landmark layout) -> data/lm.scp for stage 2 (--roi_opts).
# --vox2 true: also data/vox2 from ${VOXCELEB2} and ${VOX2_EN_LIST} (LRS3+VoxCeleb2 settings).
set -euo pipefail

max_len=16
valid_size=1200
landmarks_dir=""
vox2=false
vox2_landmarks_dir=""
. scripts/data_options.sh  # + --nj, --datadir; parses the options, reads db.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${LRS3}/pretrain/<speaker>/<clip>.mp4 + <clip>.txt ("Text:  WORDS", word timings)
${LRS3}/trainval/<speaker>/<clip>.mp4 + <clip>.txt
${LRS3}/test/<speaker>/<clip>.mp4 + <clip>.txt'
require_corpus LRS3 "${layout}" pretrain trainval test
root="$(cd "${LRS3}" && pwd)"

for split in pretrain trainval test; do
    # Clip list "<recording id> <speaker> <mp4>" of the split.
    mkdir -p "${datadir}"
    find "${root}/${split}" -mindepth 2 -maxdepth 2 -name '*.mp4' | LC_ALL=C sort |
        awk -v root="${root}/${split}" -v sp="${split}" '{
            rel = substr($0, length(root) + 2); n = split(rel, p, "/"); clip = p[2]; sub(/\.mp4$/, "", clip)
            print p[1] "_" sp "_" clip, p[1], $0 }' >"${datadir}/.${split}.list"
    [ -s "${datadir}/.${split}.list" ] ||
        corpus_error "LRS3='${LRS3}' (db.sh): no <speaker>/<clip>.mp4 under ${split}/" "${layout}"
    len=0
    [ "${split}" = pretrain ] && len="${max_len}"
    scripts/lrs_text_data.sh --max_len "${len}" "${datadir}/.${split}.list" "${datadir}/${split}"
    rm -f "${datadir}/.${split}.list"
    scripts/cut_segments.sh --nj "${nj}" "${datadir}/${split}"
done

# Validation: held out of trainval (LRS3 has no official validation split).
if [ "${valid_size}" -gt 0 ]; then
    rm -rf "${datadir}/trainval_all"
    mv "${datadir}/trainval" "${datadir}/trainval_all"
    hold_out "${datadir}/trainval_all" "${valid_size}" "${datadir}/valid" "${datadir}/trainval"
    rm -rf "${datadir}/trainval_all"
fi

lm_sets="pretrain trainval test"
[ "${valid_size}" -gt 0 ] && lm_sets+=" valid"
if [ "${vox2}" = true ]; then
    # shellcheck disable=SC2016  # the layout names db.sh's variables as written there
    vox_layout='${VOXCELEB2}/dev/mp4/<id>/<video>/<clip>.mp4; ${VOX2_EN_LIST}: lines "<id>/<video>/<clip>"'
    require_corpus VOXCELEB2 "${vox_layout}" dev/mp4
    require_file VOX2_EN_LIST "${vox_layout}"
    scripts/vox2_data.sh --corpus "${VOXCELEB2}" --list "${VOX2_EN_LIST}" --max_len "${max_len}" --nj "${nj}" "${datadir}/vox2"
    scripts/cut_segments.sh --nj "${nj}" "${datadir}/vox2"
fi

if [ -n "${landmarks_dir}" ]; then
    # one argument per set
    # shellcheck disable=SC2086
    landmark_scp "${root}" "${landmarks_dir}" "${datadir}" lm.scp ${lm_sets}
    if [ "${vox2}" = true ] && [ -n "${vox2_landmarks_dir}" ]; then
        landmark_scp "${VOXCELEB2}" "${vox2_landmarks_dir}" "${datadir}" lm_vox2.scp vox2
        LC_ALL=C sort -k1,1 -m "${datadir}/lm.scp" "${datadir}/lm_vox2.scp" -o "${datadir}/lm.scp"
    fi
fi

for s in ${lm_sets} $([ "${vox2}" = true ] && echo vox2); do
    echo "$(basename "$0"): $(data_dir_summary "${datadir}/${s}")"
done
