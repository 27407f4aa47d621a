#!/usr/bin/env bash
# Cut the segments of a data directory out of their recordings with ffmpeg:
#
#   scripts/cut_segments.sh [--nj 4] <data/set>
#
# Reads <data/set>/{segments,recordings.scp,video_src.scp} (scripts/lrs_text_data.sh,
# scripts/avspeech_data.sh, scripts/vox2_data.sh write them) and writes, for every line
# "<uttid> <recording> <start> <end>" of segments, the file video_src.scp names for
# <uttid>: an mp4 (H.264 CRF 18 + AAC) holding exactly [start, end) of the recording.
#
# Why this exists: usr2_prepare_roi (stage 2) reads whole files only, so a segment must be
# a file of its own. Re-encoding (rather than stream copy) makes the cut start on the
# requested frame instead of the previous key frame, which keeps audio, video and sliced
# landmarks aligned. Finished cuts are kept, so an interrupted run resumes.
set -euo pipefail

nj=4
crf=18

. utils/parse_options.sh

if [ "$#" -ne 1 ]; then
    echo "Usage: $0 [--nj 4] <data/set>" >&2
    exit 1
fi
dir="$1"
for f in segments recordings.scp video_src.scp; do
    [ -f "${dir}/${f}" ] || { echo "$0: missing ${dir}/${f}" >&2; exit 1; }
done
command -v ffmpeg >/dev/null || { echo "$0: ffmpeg is not on PATH (needed to cut segments)" >&2; exit 1; }
n_seg=$(wc -l <"${dir}/segments")
if [ "${n_seg}" -eq 0 ]; then
    echo "$(basename "$0"): ${dir}: no segments to cut"
    exit 0
fi

# Jobs: "<out> <src> <start> <duration>", one per segment whose cut is not there yet.
jobs="$(mktemp)"
trap 'rm -f "${jobs}"' EXIT
awk 'FILENAME == ARGV[1] { rec[$1] = $2; next }
     FILENAME == ARGV[2] { out[$1] = $2; next }
     { if (!($2 in rec)) { print "cut_segments: recording " $2 " of " $1 " not in recordings.scp" > "/dev/stderr"; exit 1 }
       printf "%s\t%s\t%.3f\t%.3f\n", out[$1], rec[$2], $3, $4 - $3 }' \
    "${dir}/recordings.scp" "${dir}/video_src.scp" "${dir}/segments" |
    while IFS=$'\t' read -r out src start dur; do
        [ -s "${out}" ] || printf '%s\t%s\t%s\t%s\n' "${out}" "${src}" "${start}" "${dur}"
    done >"${jobs}"
n_todo=$(wc -l <"${jobs}")
echo "$(basename "$0"): ${dir}: ${n_seg} segments, ${n_todo} to cut (${nj} parallel ffmpeg)"

# -ss before -i seeks the input; with re-encoding ffmpeg then decodes from the previous key
# frame and drops frames before <start>, so the output starts exactly there. A failed cut
# is reported and left missing: stage 2 then lists it in skipped.tsv (missing file).
export crf
# shellcheck disable=SC2016
tr '\t\n' '\0\0' <"${jobs}" | xargs -0 -n 4 -P "${nj}" bash -c '
    out="$1"; src="$2"; start="$3"; dur="$4"
    mkdir -p "$(dirname "${out}")"
    if ffmpeg -nostdin -hide_banner -loglevel error -y -ss "${start}" -i "${src}" -t "${dur}" \
            -map 0:v:0 -map 0:a:0? -c:v libx264 -preset veryfast -crf "${crf}" -pix_fmt yuv420p \
            -c:a aac -b:a 128k -ar 16000 -ac 1 -f mp4 "${out}.tmp" 2>"${out}.log"; then
        mv "${out}.tmp" "${out}"; rm -f "${out}.log"
    else
        echo "cut_segments: failed: ${src} ${start}+${dur} (see ${out}.log)" >&2; rm -f "${out}.tmp"
    fi' _ || true
n_ok=$(awk 'NR == FNR { s[$1] = 1; next } ($1 in s) { print $2 }' "${dir}/segments" "${dir}/video_src.scp" |
    while read -r p; do if [ -s "${p}" ]; then echo ok; fi; done | wc -l)
echo "$(basename "$0"): ${dir}: ${n_ok} of ${n_seg} segments cut"
