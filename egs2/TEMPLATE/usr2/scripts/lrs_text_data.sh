#!/usr/bin/env bash
# One Kaldi-style data directory from clips with LRS2/LRS3 ".txt" transcripts:
#
#   scripts/lrs_text_data.sh [--max_len 16] [--cut_dir DIR] <clips.list> <data/set>
#
# <clips.list>: lines "<recording id> <speaker> <path/to/clip.mp4>"; the transcript is
# <path/to/clip.txt>, whose first line is "Text:  WORDS" and which may hold a word-timing
# table after a "WORD START END ..." header (LRS3 all splits, LRS2 pretrain):
#     Text:  SO WHAT DO WE DO
#     Conf:  4
#
#     WORD START END ASDSCORE
#     SO 0.21 0.33 1.9
#
# A clip whose last word ends within --max_len seconds is one utterance (uttid = the
# recording id, the whole clip). A longer one is split at word boundaries into segments
# of at most --max_len seconds (uttid "<recording id>_<NN>", text = the words inside), as
# the paper's pre-processing does for LRS3 pretrain. Segment times are snapped outwards to
# the 25 fps frame grid, so a cut starts exactly on a video frame and precomputed
# landmarks can be sliced by frame index.
#
# Writes <data/set>/: recordings.scp (recording -> clip), segments ("<uttid> <recording>
# <start> <end>", seconds; only for split clips), video_src.scp (whole clips -> the clip,
# segments -> <cut_dir>/<uttid>.mp4, made by scripts/cut_segments.sh), text, utt2spk,
# spk2utt; all sorted by uttid. Clips without a "Text:" line get an empty transcript.
set -euo pipefail

max_len=16       # seconds; 0: never split
fps=25           # frame grid of the segment boundaries (LRS2/LRS3 are 25 fps)
cut_dir=""       # where cut_segments.sh writes the segments (default: <data/set>/cuts)

. utils/parse_options.sh
. scripts/data_dir_utils.sh

if [ "$#" -ne 2 ]; then
    echo "Usage: $0 [--max_len 16] [--cut_dir DIR] <clips.list> <data/set>" >&2
    exit 1
fi
list="$1"
dst="$2"
[ -s "${list}" ] || { echo "$0: empty clip list ${list}" >&2; exit 1; }
mkdir -p "${dst}"
[ -n "${cut_dir}" ] || cut_dir="${dst}/cuts"
cut_dir="$(mkdir -p "${cut_dir}" && cd "${cut_dir}" && pwd)"

# One awk pass reads every transcript; it prints tagged rows that are split into the
# files below: W (whole clip) or S (segment), both with the speaker and the text.
LC_ALL=C sort -k1,1 "${list}" | awk -v max_len="${max_len}" -v fps="${fps}" -v cut_dir="${cut_dir}" '
    function flush_seg(   txt, k, s, e) {
        if (ns == 0) return
        s = int(ws[first] * fps + 1e-6) / fps
        e = wend[last]; e = int(e * fps + 1 - 1e-6) / fps
        txt = ""
        for (k = first; k <= last; k++) txt = txt (txt == "" ? "" : " ") ww[k]
        nseg++
        printf "S %s_%02d %s %s %s %.2f %.2f %s\n", rec, nseg, rec, spk, cut_dir "/" rec "_" sprintf("%02d", nseg) ".mp4", s, e, txt
        ns = 0
    }
    {
        rec = $1; spk = $2; mp4 = $0; sub(/^[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", mp4)
        t = mp4; sub(/\.mp4$/, ".txt", t)
        text = ""; nw = 0; in_table = 0
        while ((getline line < t) > 0) {
            sub(/\r$/, "", line)
            if (line ~ /^Text:/) { text = line; sub(/^Text:[ \t]*/, "", text); sub(/[ \t]+$/, "", text); continue }
            if (line ~ /^WORD[ \t]+START[ \t]+END/) { in_table = 1; continue }
            if (in_table && split(line, f, /[ \t]+/) >= 3) { nw++; ww[nw] = f[1]; ws[nw] = f[2] + 0; wend[nw] = f[3] + 0 }
        }
        close(t)
        print "R", rec, mp4
        # No timings, or short enough: the whole clip is one utterance.
        if (max_len <= 0 || nw == 0 || wend[nw] <= max_len) { print "W", rec, spk, mp4, text; next }
        # Greedy split at word boundaries: extend the segment while it stays within max_len.
        nseg = 0; ns = 0
        for (i = 1; i <= nw; i++) {
            if (ns > 0 && int(wend[i] * fps + 1 - 1e-6) / fps - int(ws[first] * fps + 1e-6) / fps > max_len) flush_seg()
            if (ns == 0) first = i
            last = i; ns++
            if (wend[i] - ws[i] > max_len) { ns = 0; skipped_words++ }   # one word longer than max_len: cannot be cut
        }
        flush_seg()
    }
    END { if (skipped_words) print "warning: " skipped_words " words longer than max_len were left out" > "/dev/stderr" }
' >"${dst}/.rows"

awk '$1 == "R" { print $2, substr($0, length($1 $2) + 3) }' "${dst}/.rows" >"${dst}/recordings.scp"
# W rows: rec spk path text; S rows: utt rec spk cut start end text. Paths have no spaces
# in the corpora; the text is everything after the fixed fields.
awk '$1 == "W" { print $2, $4 } $1 == "S" { print $2, $5 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/video_src.scp"
awk '$1 == "W" { t = ""; for (i = 5; i <= NF; i++) t = t " " $i; print $2 t }
     $1 == "S" { t = ""; for (i = 8; i <= NF; i++) t = t " " $i; print $2 t }' "${dst}/.rows" |
    LC_ALL=C sort -k1,1 >"${dst}/text"
awk '$1 == "W" { print $2, $3 } $1 == "S" { print $2, $4 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/utt2spk"
awk '$1 == "S" { print $2, $3, $6, $7 }' "${dst}/.rows" | LC_ALL=C sort -k1,1 >"${dst}/segments"
rm -f "${dst}/.rows"
spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"

n_rec=$(wc -l <"${dst}/recordings.scp")
n_utt=$(wc -l <"${dst}/video_src.scp")
n_seg=$(wc -l <"${dst}/segments")
n_txt=$(awk 'NF > 1' "${dst}/text" | wc -l)
echo "$(basename "$0"): ${dst}: ${n_rec} clips -> ${n_utt} utterances (${n_seg} segments of split clips," \
    "max ${max_len} s), ${n_txt} with a transcript"
