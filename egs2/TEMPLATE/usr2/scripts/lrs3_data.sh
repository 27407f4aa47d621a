#!/usr/bin/env bash
# Kaldi-style data directories from a corpus in LRS3's layout
#   <corpus>/{pretrain,trainval,test}/<speaker>/<clip>.mp4 + <clip>.txt ("Text:  WORDS")
# for LRS3 itself and for the generated mini corpus (egs2/mini_lrs3), which has the same
# layout plus test_long/.
#
# Writes data/<split>/{video_src.scp,text,utt2spk,spk2utt} per split, utterance id
# "<speaker>_<clip>" (speaker first, so sorting by utterance also sorts by speaker, as
# Kaldi requires). With --valid_size N > 0, N utterances of --valid_from, evenly spaced
# over its sorted list, are held out: data/valid, and the rest data/<valid_from>_train.
set -euo pipefail

corpus=""           # corpus root (required)
splits="pretrain trainval test"
long_test=false     # also test_long/ (the mini corpus' length-robustness set)
valid_from=trainval # split the validation set is held out from
valid_size=0        # utterances held out for validation (0: none)
datadir=data

help_message="Usage: $0 --corpus DIR [--splits \"pretrain trainval test\"] [--long_test true]
       [--valid_from trainval --valid_size N] [--datadir data]"

. utils/parse_options.sh
. scripts/data_dir_utils.sh

log() { echo "$(basename "$0"): $*"; }

if [ -z "${corpus}" ]; then
    echo "$0: --corpus is required" >&2
    exit 1
fi
if [ ! -d "${corpus}" ]; then
    echo "$0: corpus directory '${corpus}' does not exist (set its path in db.sh)" >&2
    exit 1
fi
corpus="$(cd "${corpus}" && pwd)"
[ "${long_test}" = true ] && splits="${splits} test_long"

# make_split <split>: one data dir from <corpus>/<split>/<speaker>/<clip>.mp4
make_split() {
    local split="$1" src="${corpus}/$1" dst="${datadir}/$1"
    if [ ! -d "${src}" ]; then
        echo "$0: missing split directory ${src}" >&2
        exit 1
    fi
    mkdir -p "${dst}"
    find "${src}" -mindepth 2 -maxdepth 2 -name '*.mp4' | LC_ALL=C sort |
        awk -v root="${src}" '{
            rel = substr($0, length(root) + 2); n = split(rel, p, "/")
            clip = p[2]; sub(/\.mp4$/, "", clip)
            print p[1] "_" clip, $0
        }' | LC_ALL=C sort -k1,1 >"${dst}/video_src.scp"
    if [ ! -s "${dst}/video_src.scp" ]; then
        echo "$0: no <speaker>/<clip>.mp4 files under ${src}" >&2
        exit 1
    fi
    # The transcript is the "Text:" line of the .txt next to each .mp4; a clip without
    # one stays in video_src.scp (usable as unlabelled data) and is counted below.
    awk '{
            t = $2; sub(/\.mp4$/, ".txt", t); found = 0
            while (!found && (getline line < t) > 0) {
                if (line ~ /^Text:/) {
                    sub(/^Text:[ \t]*/, "", line); sub(/[ \t\r]+$/, "", line)
                    print $1, line; found = 1
                }
            }
            close(t)
        }' "${dst}/video_src.scp" >"${dst}/text"
    awk '{ spk = $1; sub(/_[^_]*$/, "", spk); print $1, spk }' "${dst}/video_src.scp" >"${dst}/utt2spk"
    spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"
    local n_utt n_txt n_spk
    n_utt=$(wc -l <"${dst}/video_src.scp")
    n_txt=$(awk 'NF > 1' "${dst}/text" | wc -l)
    n_spk=$(wc -l <"${dst}/spk2utt")
    log "${dst}: ${n_utt} utterances, ${n_spk} speakers, ${n_txt} transcripts" \
        "($((n_utt - n_txt)) without a Text: line)"
}

for split in ${splits}; do
    make_split "${split}"
done

if [ "${valid_size}" -gt 0 ]; then
    src="${datadir}/${valid_from}"
    [ -f "${src}/video_src.scp" ] || { echo "$0: --valid_from ${valid_from}: ${src}/video_src.scp missing" >&2; exit 1; }
    n=$(wc -l <"${src}/video_src.scp")
    if [ "${valid_size}" -ge "${n}" ]; then
        echo "$0: --valid_size ${valid_size} is not smaller than ${src} (${n} utterances)" >&2
        exit 1
    fi
    # evenly spaced picks cover every speaker of a speaker-sorted list
    hold_out "${src}" "${valid_size}" "${datadir}/valid" "${datadir}/${valid_from}_train"
    log "held out ${valid_size} of ${n} utterances of ${valid_from}: ${datadir}/valid" \
        "and ${datadir}/${valid_from}_train ($(wc -l <"${datadir}/${valid_from}_train/utt2spk") utterances)"
fi
