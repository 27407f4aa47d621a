#!/usr/bin/env bash
# LibriSpeech test sets (stage 1 of usr2.sh), audio only, from a local copy at
# ${LIBRISPEECH} (db.sh) in LibriSpeech's own layout:
#   ${LIBRISPEECH}/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
#   ${LIBRISPEECH}/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "<uttid> WORDS" lines
# --splits test-clean,test-other -> data/test_clean, data/test_other (video_src.scp naming
# the flac files, text, utt2spk, spk2utt); uttid = LibriSpeech's, speaker = <speaker>-<chapter>
# (as Kaldi's LibriSpeech recipe). A flac without a transcript line, or a transcript line
# without its flac, is left out and counted.
set -euo pipefail

splits=test-clean,test-other
datadir=data

. utils/parse_options.sh
. ./db.sh
. scripts/corpus_check.sh
. scripts/data_dir_utils.sh

# shellcheck disable=SC2016  # the layout names db.sh's variable as written there
layout='${LIBRISPEECH}/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
${LIBRISPEECH}/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt  ("<uttid> WORDS" per line)
<split>: test-clean, test-other (the LibriSpeech directory holding them, e.g. .../LibriSpeech)'
require_corpus LIBRISPEECH "${layout}"
root="$(cd "${LIBRISPEECH}" && pwd)"

for split in ${splits//,/ }; do
    [ -d "${root}/${split}" ] ||
        corpus_error "LIBRISPEECH='${LIBRISPEECH}' (db.sh) has no '${split}'." "${layout}"
    d="${datadir}/${split//-/_}"
    mkdir -p "${d}"
    find "${root}/${split}" -mindepth 3 -maxdepth 3 -name '*.trans.txt' -print0 | xargs -0 -r cat |
        sed 's/\r$//' | awk 'NF > 1' | LC_ALL=C sort -u -k1,1 >"${d}/.text"
    find "${root}/${split}" -mindepth 3 -maxdepth 3 -name '*.flac' |
        awk '{ n = split($0, p, "/"); u = p[n]; sub(/\.flac$/, "", u); print u, $0 }' |
        LC_ALL=C sort -k1,1 >"${d}/.flac"
    [ -s "${d}/.flac" ] || corpus_error "LIBRISPEECH='${LIBRISPEECH}' (db.sh): no flac file under ${split}/." "${layout}"
    awk 'NR == FNR { t[$1] = 1; next } ($1 in t)' "${d}/.text" "${d}/.flac" >"${d}/video_src.scp"
    awk 'NR == FNR { f[$1] = 1; next } ($1 in f)' "${d}/.flac" "${d}/.text" >"${d}/text"
    no_text=$(( $(wc -l <"${d}/.flac") - $(wc -l <"${d}/video_src.scp") ))
    no_flac=$(( $(wc -l <"${d}/.text") - $(wc -l <"${d}/text") ))
    rm -f "${d}/.flac" "${d}/.text"
    [ "$((no_text + no_flac))" -eq 0 ] ||
        echo "$(basename "$0"): ${split}: left out ${no_text} flac files without a transcript and ${no_flac} transcripts without a flac file" >&2
    [ -s "${d}/video_src.scp" ] || corpus_error "LIBRISPEECH='${LIBRISPEECH}' (db.sh): no transcribed flac file in ${split}/." "${layout}"
    awk '{ n = split($1, p, "-"); print $1, p[1] "-" p[2] }' "${d}/video_src.scp" >"${d}/utt2spk"
    spk2utt_of "${d}/utt2spk" >"${d}/spk2utt"
    echo "$(basename "$0"): $(data_dir_summary "${d}")"
done
