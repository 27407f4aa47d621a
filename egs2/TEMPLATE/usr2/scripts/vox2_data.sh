#!/usr/bin/env bash
# VoxCeleb2 (dev) as unlabelled data, restricted to an English-only id list:
#
#   scripts/vox2_data.sh --corpus VOX2 --list en.list [--text asr.txt] [--max_len 16] [--nj 4] <data/set>
#
# --corpus: VoxCeleb2 root with dev/mp4/<id>/<video>/<clip>.mp4 (and test/mp4/... if the
#   list names test clips).
# --list: the English-only ids, one clip per line, plain or gzipped (.gz). The real list
#   is AV-HuBERT's avhubert/preparation/data/vox-en.id.gz (also shipped uncompressed as
#   auto_avsr's preparation/vox-en.id), whose lines are "<split>/<id>/<video>/<clip>",
#   e.g. "dev/id05668/XWKC1JUM_ow/00053". Accepted, to be lenient: "dev/" or "test/"
#   with or without "mp4/" after it (AV-HuBERT's own file.list ids are
#   "dev/mp4/<id>/<video>/<clip>"), a bare "mp4/" or no prefix (= dev), "./", and a
#   ".mp4" suffix. Lines of any other shape are counted and reported, never used
#   silently; listed clips missing on disk are counted and left out.
# --text: optional transcripts (e.g. from an ASR system), "<clip id as in the list> WORDS"
#   or "<uttid> WORDS": they become data/<set>/text (for the long-utterance buckets).
# --max_len: clips longer than this (seconds, measured with ffprobe) are chunked into
#   equal pieces of at most max_len (segments; no word timings exist to cut at words);
#   0 keeps every clip whole (stage 4's --max_frames then drops the long ones).
#
# Writes <data/set>/{recordings.scp,segments,video_src.scp,utt2spk,spk2utt,utt2dur[,text]};
# uttid "<id>_<video>_<clip>[_<NN>]", speaker = the VoxCeleb2 identity (dev and test
# identities are disjoint, so the split is not part of the id).
set -euo pipefail

corpus=""
list=""
text=""
max_len=16
nj=4
cut_dir=""

. utils/parse_options.sh
. scripts/data_dir_utils.sh

if [ "$#" -ne 1 ] || [ -z "${corpus}" ] || [ -z "${list}" ]; then
    echo "Usage: $0 --corpus VOX2 --list en.list [--text asr.txt] [--max_len 16] [--nj 4] <data/set>" >&2
    exit 1
fi
dst="$1"
corpus="$(cd "${corpus}" && pwd)"
mkdir -p "${dst}"
[ -n "${cut_dir}" ] || cut_dir="${dst}/cuts"
cut_dir="$(mkdir -p "${cut_dir}" && cd "${cut_dir}" && pwd)"

# List lines -> "<split>/<id>/<video>/<clip>" (BAD <line> for any other shape).
read_list() { case "$1" in *.gz) gzip -dc "$1" ;; *) cat "$1" ;; esac; }
norm_id() {
    sed -E -e 's/\r$//' -e 's/^[[:space:]]+//' -e 's/[[:space:]].*$//' -e 's#^\./##' -e 's#\.mp4$##' \
        -e 's#^(dev|test)/mp4/#\1/#' -e 's#^mp4/##' |
        awk -F/ 'NF == 0 || $0 == "" { next }
                 NF == 3 { print "dev/" $0; next }
                 NF == 4 && ($1 == "dev" || $1 == "test") { print; next }
                 { print "BAD " $0 }'
}
read_list "${list}" | norm_id | LC_ALL=C sort -u >"${dst}/.ids"
n_bad=$(grep -c '^BAD ' "${dst}/.ids" || true)
if [ "${n_bad}" -gt 0 ]; then
    echo "$(basename "$0"): ${n_bad} lines of ${list} are not clip ids (<split>/<id>/<video>/<clip>), e.g.:" >&2
    awk '/^BAD / && ++n <= 3 { print "    " substr($0, 5) }' "${dst}/.ids" >&2
fi
# Normalised ids -> "<uttid> <speaker> <path>", only clips that exist.
awk '!/^BAD /' "${dst}/.ids" |
    while IFS=/ read -r split spk vid clip; do
        p="${corpus}/${split}/mp4/${spk}/${vid}/${clip}.mp4"
        if [ -f "${p}" ]; then echo "${spk}_${vid}_${clip} ${spk} ${p}"; else echo "MISSING ${p}"; fi
    done >"${dst}/.clips"
n_missing=$(grep -c '^MISSING ' "${dst}/.clips" || true)
grep -v '^MISSING ' "${dst}/.clips" | LC_ALL=C sort -k1,1 >"${dst}/.found" || true
[ -s "${dst}/.found" ] || { echo "$0: none of the ids of ${list} is a clip under ${corpus}/{dev,test}/mp4" >&2; exit 1; }
awk '{ print $1, $3 }' "${dst}/.found" >"${dst}/recordings.scp"

# Durations (seconds) of every clip: chunking and the length buckets need them. "$1" is the
# inner sh's argument.
# shellcheck disable=SC2016
tr '\n' '\0' < <(awk '{ print $3 }' "${dst}/.found") |
    xargs -0 -n 1 -P "${nj}" sh -c 'printf "%s %s\n" "$1" "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$1")"' _ \
    >"${dst}/.dur"
awk 'NR == FNR { d[$1] = $2; next } { print $1, ($3 in d && d[$3] != "") ? d[$3] : 0 }' "${dst}/.dur" "${dst}/.found" \
    >"${dst}/.rec2dur"

# Whole clips up to max_len, the others in n = ceil(dur / max_len) equal chunks.
awk -v max_len="${max_len}" -v cut_dir="${cut_dir}" 'NR == FNR { path[$1] = $3; spk[$1] = $2; next }
    {   rec = $1; dur = $2 + 0
        if (max_len <= 0 || dur <= max_len) { print "W", rec, spk[rec], path[rec], dur; next }
        n = int(dur / max_len); if (n * max_len < dur) n++
        for (k = 1; k <= n; k++) {
            s = (k - 1) * dur / n; e = k * dur / n; u = sprintf("%s_%02d", rec, k)
            printf "S %s %s %s %s %.3f %.3f\n", u, rec, spk[rec], cut_dir "/" u ".mp4", s, e
        }
    }' "${dst}/.found" "${dst}/.rec2dur" >"${dst}/.rows"
awk '$1 == "W" { print $2, $4 } $1 == "S" { print $2, $5 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/video_src.scp"
awk '$1 == "W" { print $2, $3 } $1 == "S" { print $2, $4 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/utt2spk"
awk '$1 == "W" { print $2, $5 } $1 == "S" { printf "%s %.3f\n", $2, $7 - $6 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/utt2dur"
awk '$1 == "S" { print $2, $3, $6, $7 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/segments"
spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"

# Transcripts only make sense for whole clips (a chunk has no known words).
rm -f "${dst}/text"
if [ -n "${text}" ]; then
    sed -e 's/\r$//' "${text}" | awk '{ k = $1; sub(/^\.\//, "", k); sub(/\.mp4$/, "", k)
            sub(/^(dev|test)\/(mp4\/)?/, "", k); sub(/^mp4\//, "", k); gsub(/\//, "_", k); $1 = k; print }' |
        awk 'NR == FNR { whole[$1] = 1; next } ($1 in whole)' <(awk '$1 == "W" { print $2 }' "${dst}/.rows") - |
        LC_ALL=C sort -k1,1 >"${dst}/text"
    echo "$(basename "$0"): ${dst}: $(wc -l <"${dst}/text") transcripts from ${text}"
fi
rm -f "${dst}/.ids" "${dst}/.clips" "${dst}/.found" "${dst}/.dur" "${dst}/.rec2dur" "${dst}/.rows"
echo "$(basename "$0"): ${dst}: $(wc -l <"${dst}/recordings.scp") clips ($n_missing listed but missing, $n_bad bad lines)" \
    "-> $(wc -l <"${dst}/video_src.scp") utterances ($(wc -l <"${dst}/segments") chunks of clips over ${max_len} s)"
