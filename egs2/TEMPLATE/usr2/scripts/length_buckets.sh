#!/usr/bin/env bash
# Length buckets of a transcribed set, for the paper's long-utterance evaluation:
#
#   scripts/length_buckets.sh [--lo 50 --hi 600 --step 50] <data/set>
#
# Needs <data/set>/{utt2dur,text}. Writes data/<set>_len<a>_<b> (a <= frames < b, 25 fps)
# for a = lo, lo+step, ..., hi-step, each with the transcribed utterances of that length
# (empty buckets are not written). The names are what --test_sets takes.
set -euo pipefail
lo=50
hi=600
step=50
fps=25
. utils/parse_options.sh
. scripts/data_dir_utils.sh
[ "$#" -eq 1 ] || { echo "Usage: $0 [--lo 50 --hi 600 --step 50] <data/set>" >&2; exit 1; }
src="$1"
for f in utt2dur text video_src.scp utt2spk; do
    [ -f "${src}/${f}" ] || { echo "$0: missing ${src}/${f}" >&2; exit 1; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
for a in $(seq "${lo}" "${step}" $((hi - step))); do
    b=$((a + step))
    awk 'NR == FNR { if (NF > 1) t[$1] = 1; next }
         ($1 in t) { f = $2 * fps; if (f >= a && f < b) print $1 }' a="${a}" b="${b}" fps="${fps}" \
        "${src}/text" "${src}/utt2dur" >"${tmp}/keep"
    [ -s "${tmp}/keep" ] || continue
    dst="${src}_len${a}_${b}"
    subset_data_dir "${src}" "${dst}" "${tmp}/keep"
    echo "$(basename "$0"): ${dst}: $(wc -l <"${tmp}/keep") utterances of ${a}-${b} frames"
done
