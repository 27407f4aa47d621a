#!/usr/bin/env bash
# AVSpeech data preparation (stage 1 of usr2.sh): unlabelled data from the CSV and the
# videos you downloaded (this recipe downloads nothing), and, with transcripts, the
# labelled OOD test set.
#   ${AVSPEECH}/clips/<youtube_id>.mp4                  whole videos (.mkv / .webm too), or
#   ${AVSPEECH}/clips/<youtube_id>_<start>_<end>.mp4    clips already cut to a CSV row
#   ${AVSPEECH_CSV} (default ${AVSPEECH}/avspeech_train.csv): "youtube_id,start,end,face_x,face_y"
#   ${AVSPEECH_TEXT} (optional): "<uttid> WORDS" or "<youtube_id>_<start>_<end> WORDS"
# Writes data/avspeech/ (unlabelled; segments of whole videos are cut into files by
# scripts/cut_segments.sh), data/avspeech_test/ (the transcribed rows, with text; they are
# left out of data/avspeech), data/face_hint.scp (the CSV's face centres, for stage 2's
# --face_hint) and data/avspeech/skipped_rows.tsv (every CSV row without a usable video,
# with the reason). See scripts/avspeech_data.sh for the details.
# --landmarks_dir: precomputed landmarks per utterance (<uttid>.pkl) -> data/lm.scp.
set -euo pipefail

landmarks_dir=""
. scripts/data_options.sh  # + --nj, --datadir; parses the options, reads db.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${AVSPEECH}/clips/<youtube_id>.mp4                 whole downloaded videos (.mkv/.webm too), or
${AVSPEECH}/clips/<youtube_id>_<start>_<end>.mp4   clips cut to one CSV row ("<start>-<end>" too; seconds)
${AVSPEECH_CSV} (default ${AVSPEECH}/avspeech_train.csv): no header, lines "youtube_id,start,end,face_x,face_y"
${AVSPEECH_TEXT} (optional): lines "<uttid> WORDS" or "<youtube_id>_<start>_<end> WORDS"'
require_corpus AVSPEECH "${layout}" clips
AVSPEECH_CSV="${AVSPEECH_CSV:-${AVSPEECH}/avspeech_train.csv}"
require_file AVSPEECH_CSV "${layout}"
text_opts=""
sets="avspeech"
if [ -n "${AVSPEECH_TEXT:-}" ]; then
    require_file AVSPEECH_TEXT "${layout}"
    text_opts="--text ${AVSPEECH_TEXT} --test_dir ${datadir}/avspeech_test"
    sets+=" avspeech_test"
fi
[ -z "${landmarks_dir}" ] || require_landmarks_dir "${landmarks_dir}"

mkdir -p "${datadir}"
# shellcheck disable=SC2086
scripts/avspeech_data.sh --csv "${AVSPEECH_CSV}" --clips_dir "${AVSPEECH}/clips" --nj "${nj}" \
    --landmarks_dir "${landmarks_dir}" ${text_opts} "${datadir}/avspeech"
for s in ${sets}; do
    scripts/cut_segments.sh --nj "${nj}" "${datadir}/${s}"
done

# One list for stage 2 (--roi_opts applies to every set; uttids are unique across sets).
# shellcheck disable=SC2046
LC_ALL=C sort -k1,1 $(for s in ${sets}; do echo "${datadir}/${s}/face_hint.scp"; done) >"${datadir}/face_hint.scp"
if [ -n "${landmarks_dir}" ]; then
    # shellcheck disable=SC2046
    LC_ALL=C sort -k1,1 $(for s in ${sets}; do echo "${datadir}/${s}/lm.scp"; done) >"${datadir}/lm.scp"
    echo "$(basename "$0"): ${datadir}/lm.scp: $(wc -l <"${datadir}/lm.scp") utterances with precomputed landmarks" \
        "(the others get face detection in stage 2)"
fi
for s in ${sets}; do echo "$(basename "$0"): $(data_dir_summary "${datadir}/${s}")"; done
