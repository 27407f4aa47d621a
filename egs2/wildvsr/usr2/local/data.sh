#!/usr/bin/env bash
# WildVSR (stage 1 of usr2.sh), the out-of-distribution VSR test set, video only. Either
# WildVSR as released at ${WILDVSR} (db.sh):
#   ${WILDVSR}/videos/<clip>.mp4
#   ${WILDVSR}/labels.json            {"<clip>.mp4": "TRANSCRIPT", ...}
# or a Kaldi-style list ${WILDVSR_LIST} of "uttid path-to-mp4 WORDS" lines.
# Writes data/test/ (video_src.scp, text, utt2spk, spk2utt); uttid "wildvsr_<clip>" (release)
# or the list's; each clip is its own speaker (WildVSR has no speaker labels).
set -euo pipefail

datadir=data

. utils/parse_options.sh
. ./db.sh
. scripts/corpus_check.sh
. scripts/data_dir_utils.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${WILDVSR}/videos/<clip>.mp4 and ${WILDVSR}/labels.json ({"<clip>.mp4": "TRANSCRIPT", ...})
or WILDVSR_LIST: a file of "uttid path-to-mp4 WORDS" lines'
d="${datadir}/test"
if [ -n "${WILDVSR_LIST}" ]; then
    require_file WILDVSR_LIST "${layout}"
    python3 local/wildvsr_lists.py --list "${WILDVSR_LIST}" --out "${d}"
else
    require_corpus WILDVSR "${layout}" videos labels.json
    python3 local/wildvsr_lists.py --root "${WILDVSR}" --out "${d}"
fi
spk2utt_of "${d}/utt2spk" >"${d}/spk2utt"
echo "$(basename "$0"): $(data_dir_summary "${d}")"
