#!/usr/bin/env bash
# VoxCeleb2 data preparation (stage 1 of usr2.sh): English-only unlabelled data, and with
# transcripts the paper's long-utterance test buckets.
#   ${VOXCELEB2}/dev/mp4/<id>/<video>/<clip>.mp4
#   ${VOX2_EN_LIST}: English ids, "dev/<id>/<video>/<clip>" per line (AV-HuBERT vox-en.id, .gz too)
#   ${VOX2_TEXT} (optional): "<id>/<video>/<clip> WORDS" transcripts (e.g. from an ASR system)
# Writes data/vox2/ (unlabelled, clips over --max_len s chunked) and, with transcripts,
# data/vox2_test/ (the transcribed whole clips) and data/vox2_test_len<a>_<b>/ buckets,
# 50-600 frames in steps of 50 (scripts/length_buckets.sh).
# --landmarks_dir: landmarks mirroring ${VOXCELEB2} (dev/mp4/<id>/<video>/<clip>.pkl).
set -euo pipefail

max_len=16
landmarks_dir=""
. scripts/data_options.sh  # + --nj, --datadir; parses the options, reads db.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${VOXCELEB2}/dev/mp4/<id>/<video>/<clip>.mp4
${VOX2_EN_LIST}: English-only ids, lines "dev/<id>/<video>/<clip>" (AV-HuBERT vox-en.id, .gz too)
${VOX2_TEXT} (optional): lines "<id>/<video>/<clip> WORDS"'
require_corpus VOXCELEB2 "${layout}" dev/mp4
require_file VOX2_EN_LIST "${layout}"
text_opt=""
if [ -n "${VOX2_TEXT:-}" ]; then
    require_file VOX2_TEXT "${layout}"
    text_opt="--text ${VOX2_TEXT}"
fi
mkdir -p "${datadir}"
# shellcheck disable=SC2086
scripts/vox2_data.sh --corpus "${VOXCELEB2}" --list "${VOX2_EN_LIST}" --max_len "${max_len}" --nj "${nj}" \
    ${text_opt} "${datadir}/vox2"
scripts/cut_segments.sh --nj "${nj}" "${datadir}/vox2"
sets="vox2"
if [ -s "${datadir}/vox2/text" ]; then
    subset_data_dir "${datadir}/vox2" "${datadir}/vox2_test" "${datadir}/vox2/text"
    rm -f "${datadir}/vox2_test/segments"
    scripts/length_buckets.sh "${datadir}/vox2_test"
    sets+=" vox2_test"
fi
if [ -n "${landmarks_dir}" ]; then
    landmark_scp "${VOXCELEB2}" "${landmarks_dir}" "${datadir}" lm.scp vox2
fi
for s in ${sets}; do echo "$(basename "$0"): $(data_dir_summary "${datadir}/${s}")"; done
