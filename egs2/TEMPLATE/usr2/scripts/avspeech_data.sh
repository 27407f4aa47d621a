#!/usr/bin/env bash
# AVSpeech (its CSV + the videos you downloaded) as a Kaldi-style data directory:
#
#   scripts/avspeech_data.sh --csv avspeech_train.csv --clips_dir DIR \
#       [--text T --test_dir data/avspeech_test] [--landmarks_dir LM] [--nj 4] <data/set>
#
# --csv: the CSV as released: no header, one segment per line
#       youtube_id,start_seconds,end_seconds,face_x,face_y
#   e.g. "AvWWVOgaMlk,90.000000,93.566667,0.586719,0.311111"; face_x, face_y: the
#   speaker's face centre in the segment's first frame, normalised to 0..1.
# --clips_dir: the videos, found by file name (in it or one folder down):
#       <youtube_id>.{mp4,mkv,webm}               a whole video: each row's segment of it
#                                                 is cut out (segments, scripts/cut_segments.sh)
#       <youtube_id>_<start>_<end>.{mp4,mkv,webm} a clip already cut to one row ("_" or "-"
#                                                 between the times, in seconds, matched to
#                                                 the CSV within --tolerance s): used as it is
#   A cut clip is preferred to cutting the whole video again.
# --text: optional transcripts "<key> WORDS", key = the uttid below or
#   "<youtube_id>_<start>_<end>" in seconds. Those rows form --test_dir (labelled: the
#   paper's AVSpeech OOD test set) and are left out of <data/set>, so a test segment is
#   never also unlabelled training data.
# --landmarks_dir: precomputed landmarks per utterance, <uttid>.pkl (or <clip name>.pkl of
#   a cut clip; .npz/.npy too), holding the segment's frames -> lm.scp of each set. Whole-
#   video landmarks are not sliced: YouTube frame rates vary, so frame indices of a
#   segment are not known here. Utterances without a file get face detection in stage 2.
#
# Writes <data/set>/{recordings.scp,segments,video_src.scp,utt2spk,spk2utt,utt2dur,
# face_hint.scp,skipped_rows.tsv[,lm.scp]} (the same, without skipped_rows.tsv, plus text,
# in --test_dir), sorted by uttid "<youtube_id>_<start ms>_<end ms>" (7 digits each);
# speaker = the YouTube id. Every CSV row ends up in exactly one place: an utterance of
# <data/set>, one of --test_dir, or a line of skipped_rows.tsv with its reason:
#   bad_row (not 5 fields / not numbers / end <= start), duplicate_row, no_video,
#   unreadable_video (ffprobe cannot read the whole video), segment_beyond_video.
set -euo pipefail

csv=""
clips_dir=""
text=""
test_dir=""
landmarks_dir=""
nj=4
cut_dir=""
tolerance=0.05   # seconds of slack: clip file-name times vs the CSV, segment end vs video length

. utils/parse_options.sh
. scripts/data_dir_utils.sh

usage="Usage: $0 --csv CSV --clips_dir DIR [--text T --test_dir DIR] [--landmarks_dir LM] [--nj 4] <data/set>"
if [ "$#" -ne 1 ] || [ -z "${csv}" ] || [ -z "${clips_dir}" ]; then
    echo "${usage}" >&2
    exit 1
fi
if [ -n "${text}" ] && [ -z "${test_dir}" ]; then
    echo "$0: --text needs --test_dir (where the transcribed rows go)" >&2
    exit 1
fi
dst="$1"
clips_dir="$(cd "${clips_dir}" && pwd)"
mkdir -p "${dst}"
[ -n "${cut_dir}" ] || cut_dir="${dst}/cuts"
cut_dir="$(mkdir -p "${cut_dir}" && cd "${cut_dir}" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# Shared awk: parse "<id>_<start>_<end>" / "<id>_<start>-<end>" (seconds) into P_ID, P_S, P_E.
# YouTube ids may hold "_" and "-", but the two times are always the last fields.
parse_awk='
function parse_name(name,   n, f, g, k, i) {
    n = split(name, f, "_")
    if (n >= 2 && f[n] ~ /^[0-9]+(\.[0-9]+)?-[0-9]+(\.[0-9]+)?$/) { split(f[n], g, "-"); k = n - 1; P_S = g[1] + 0; P_E = g[2] + 0 }
    else if (n >= 3 && f[n - 1] ~ /^[0-9]+(\.[0-9]+)?$/ && f[n] ~ /^[0-9]+(\.[0-9]+)?$/) { k = n - 2; P_S = f[n - 1] + 0; P_E = f[n] + 0 }
    else return 0
    P_ID = f[1]
    for (i = 2; i <= k; i++) P_ID = P_ID "_" f[i]
    return 1
}
function absdiff(a, b) { return a > b ? a - b : b - a }'

# 1. The videos on disk: "<path>" per line.
find "${clips_dir}" -mindepth 1 -maxdepth 2 -type f \( -name '*.mp4' -o -name '*.mkv' -o -name '*.webm' \) |
    LC_ALL=C sort >"${tmp}/files"

# 2. Every CSV row -> one tagged, tab-separated line:
#    S line uttid ytid start end x y video   (a segment of a whole video)
#    C line uttid ytid start end x y clip    (an already cut clip)
#    X line ytid start end reason detail     (skipped)
awk -v tol="${tolerance}" -v clips="${clips_dir}" -v count_file="${tmp}/n_rows" "${parse_awk}"'
    BEGIN { OFS = "\t"; NUM = "^[0-9]+(\\.[0-9]+)?$" }
    FILENAME == ARGV[1] {
        base = $0; sub(/.*\//, "", base); stem = base; sub(/\.(mp4|mkv|webm)$/, "", stem)
        if (!(stem in whole)) whole[stem] = $0
        if (parse_name(stem)) { k = ++nclip[P_ID]; cs[P_ID, k] = P_S; ce[P_ID, k] = P_E; cp[P_ID, k] = $0 }
        next
    }
    {
        row = $0; sub(/\r$/, "", row)
        if (row ~ /^[ \t]*$/) next
        rows++
        n = split(row, f, ",")
        for (i = 1; i <= n; i++) { gsub(/^[ \t"]+|[ \t"]+$/, "", f[i]) }
        id = f[1]; s = f[2]; e = f[3]
        if (n != 5) { print "X", FNR, id, s, e, "bad_row", "expected 5 comma-separated fields, got " n; next }
        if (id == "" || id ~ /[\/ \t]/) { print "X", FNR, id, s, e, "bad_row", "not a YouTube id: \"" id "\""; next }
        if (s !~ NUM || e !~ NUM || f[4] !~ NUM || f[5] !~ NUM) { print "X", FNR, id, s, e, "bad_row", "start, end, x, y must be numbers"; next }
        if (e + 0 <= s + 0) { print "X", FNR, id, s, e, "bad_row", "end <= start"; next }
        utt = sprintf("%s_%07d_%07d", id, int(s * 1000 + 0.5), int(e * 1000 + 0.5))
        if (utt in seen) { print "X", FNR, id, s, e, "duplicate_row", "the segment of line " seen[utt]; next }
        seen[utt] = FNR
        for (k = 1; k <= nclip[id]; k++)
            if (absdiff(cs[id, k], s) <= tol && absdiff(ce[id, k], e) <= tol) break
        if (k <= nclip[id]) print "C", FNR, utt, id, s, e, f[4], f[5], cp[id, k]
        else if (id in whole) print "S", FNR, utt, id, s, e, f[4], f[5], whole[id]
        else print "X", FNR, id, s, e, "no_video", "no " clips "/" id ".{mp4,mkv,webm} nor a clip " id "_" s "_" e
    }
    END { print rows + 0 > count_file }' "${tmp}/files" <(sed 's/\r$//' "${csv}") >"${tmp}/rows"
n_rows=$(cat "${tmp}/n_rows")

# 3. Durations of the whole videos used: a segment must lie inside its video (a download
#    cut short would otherwise give a short or empty cut). "$1" is the inner sh's argument.
# shellcheck disable=SC2016
awk -F'\t' '$1 == "S" { print $9 }' "${tmp}/rows" | LC_ALL=C sort -u | tr '\n' '\0' |
    xargs -0 -r -n 1 -P "${nj}" sh -c \
        'printf "%s\t%s\n" "$1" "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$1" 2>/dev/null)"' _ \
    >"${tmp}/durations"
awk -F'\t' -v tol="${tolerance}" 'BEGIN { OFS = "\t" }
    FILENAME == ARGV[1] { if ($2 ~ /^[0-9.]+$/) dur[$1] = $2 + 0; next }
    $1 == "S" {
        if (!($9 in dur)) { print "X", $2, $4, $5, $6, "unreadable_video", "ffprobe cannot read " $9; next }
        if ($6 + 0 > dur[$9] + tol) { print "X", $2, $4, $5, $6, "segment_beyond_video", $9 " lasts " dur[$9] " s"; next }
    }
    { print }' "${tmp}/durations" "${tmp}/rows" >"${tmp}/checked"

# 4. Transcribed rows -> the test set (keys matched exactly, or by id and times).
awk -F'\t' '$1 == "S" || $1 == "C"' "${tmp}/checked" >"${tmp}/kept"
: >"${tmp}/test_text"
if [ -n "${text}" ]; then
    awk -v tol="${tolerance}" "${parse_awk}"'
        FILENAME == ARGV[1] { split($0, r, "\t"); utt[r[3]] = 1; k = ++n[r[4]]; rs[r[4], k] = r[5]; re[r[4], k] = r[6]; ru[r[4], k] = r[3]; next }
        {   sub(/\r$/, ""); if (NF < 2) next
            key = $1; words = $0; sub(/^[^ \t]+[ \t]+/, "", words)
            if (!(key in utt)) {
                found = ""
                if (parse_name(key)) for (k = 1; k <= n[P_ID]; k++)
                    if (absdiff(rs[P_ID, k], P_S) <= tol && absdiff(re[P_ID, k], P_E) <= tol) { found = ru[P_ID, k]; break }
                if (found == "") { unmatched++; next }
                key = found
            }
            print key, words
        }
        END { if (unmatched) print "avspeech_data.sh: " unmatched " transcripts match no prepared row" > "/dev/stderr" }' \
        "${tmp}/kept" "${text}" | LC_ALL=C sort -u -k1,1 >"${tmp}/test_text"
fi
awk '{ print $1 }' "${tmp}/test_text" >"${tmp}/test_ids"
awk -F'\t' 'FILENAME == ARGV[1] { t[$1] = 1; next } !($3 in t)' "${tmp}/test_ids" "${tmp}/kept" >"${tmp}/main_rows"
awk -F'\t' 'FILENAME == ARGV[1] { t[$1] = 1; next } ($3 in t)' "${tmp}/test_ids" "${tmp}/kept" >"${tmp}/test_rows"

# write_set <rows> <dir>: the data directory files of the S/C rows.
write_set() {
    local rows="$1" dir="$2" f
    mkdir -p "${dir}"
    rm -f "${dir}/text" "${dir}/lm.scp"
    awk -F'\t' '$1 == "S" { print $4, $9 }' "${rows}" | LC_ALL=C sort -u -k1,1 >"${dir}/recordings.scp"
    awk -F'\t' '$1 == "S" { print $3, $4, $5, $6 }' "${rows}" | LC_ALL=C sort -k1,1 >"${dir}/segments"
    awk -F'\t' -v cuts="${cut_dir}" '{ print $3, ($1 == "S" ? cuts "/" $3 ".mp4" : $9) }' "${rows}" |
        LC_ALL=C sort -k1,1 >"${dir}/video_src.scp"
    awk -F'\t' '{ print $3, $4 }' "${rows}" | LC_ALL=C sort -k1,1 >"${dir}/utt2spk"
    awk -F'\t' '{ printf "%s %.3f\n", $3, $6 - $5 }' "${rows}" | LC_ALL=C sort -k1,1 >"${dir}/utt2dur"
    awk -F'\t' '{ print $3, $7, $8 }' "${rows}" | LC_ALL=C sort -k1,1 >"${dir}/face_hint.scp"
    spk2utt_of "${dir}/utt2spk" >"${dir}/spk2utt"
    if [ -n "${landmarks_dir}" ]; then
        # Per utterance, or per cut clip (its file name), in the landmark directory.
        while IFS=$'\t' read -r tag _ utt _ _ _ _ _ media; do
            names="${utt}"
            [ "${tag}" = C ] && names+=" $(basename "${media%.*}")"
            for name in ${names}; do
                for suffix in pkl npz npy; do
                    f="${landmarks_dir}/${name}.${suffix}"
                    if [ -f "${f}" ]; then echo "${utt} $(cd "$(dirname "${f}")" && pwd)/$(basename "${f}")"; continue 3; fi
                done
            done
        done <"${rows}" | LC_ALL=C sort -k1,1 >"${dir}/lm.scp"
    fi
}

write_set "${tmp}/main_rows" "${dst}"
if [ -n "${text}" ]; then
    write_set "${tmp}/test_rows" "${test_dir}"
    cp "${tmp}/test_text" "${test_dir}/text"
fi
{
    printf 'line\tyoutube_id\tstart\tend\treason\tdetail\n'
    awk -F'\t' 'BEGIN { OFS = "\t" } $1 == "X" { $1 = ""; sub(/^\t/, ""); print }' "${tmp}/checked" | LC_ALL=C sort -n -k1,1
} >"${dst}/skipped_rows.tsv"

# Every row accounted for exactly once; a mismatch is a bug here, never hidden.
n_main=$(wc -l <"${tmp}/main_rows")
n_test=$(wc -l <"${tmp}/test_rows")
n_skip=$(($(wc -l <"${dst}/skipped_rows.tsv") - 1))
if [ "$((n_main + n_test + n_skip))" -ne "${n_rows}" ]; then
    echo "$0: internal error: ${n_main} + ${n_test} + ${n_skip} != ${n_rows} rows" >&2
    exit 1
fi
if [ "$((n_main + n_test))" -eq 0 ]; then
    echo "$0: no row of ${csv} has a video under ${clips_dir} (see ${dst}/skipped_rows.tsv)" >&2
    exit 1
fi
n_seg=$(awk -F'\t' '$1 == "S"' "${tmp}/main_rows" "${tmp}/test_rows" | wc -l)
echo "$(basename "$0"): ${csv}: ${n_rows} rows = ${n_main} utterances in ${dst}" \
    "+ ${n_test} transcribed in ${test_dir:-(no --text)} + ${n_skip} skipped (${dst}/skipped_rows.tsv);" \
    "$((n_main + n_test - n_seg)) cut clips, ${n_seg} segments of whole videos to cut"
if [ "${n_skip}" -gt 0 ]; then
    tail -n +2 "${dst}/skipped_rows.tsv" | cut -f5 | sort | uniq -c | sed 's/^/    /'
fi
