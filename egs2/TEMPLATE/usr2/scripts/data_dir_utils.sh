# shellcheck shell=bash
# Helpers for Kaldi-style data directories (sourced by the corpus preparation scripts).

# plus_joined "a  b c" -> a+b+c: the name of the directory that combines several sets.
plus_joined() {
    local -a words
    read -ra words <<<"$1"
    local IFS=+
    echo "${words[*]}"
}

# require_landmarks_dir DIR: stop the script unless DIR (a --landmarks_dir option) is a directory.
require_landmarks_dir() {
    [ -d "$1" ] || { echo "$0: the landmarks directory '$1' is not a directory" >&2; exit 1; }
}

# landmark_scp CORPUS LANDMARKS_DIR DATADIR OUT SET...: DATADIR/OUT lists the precomputed
# landmark file of every utterance of DATADIR/SET... (scripts/make_landmark_scp.py; the
# landmarks laid out as CORPUS's videos). Stops unless LANDMARKS_DIR is a directory.
landmark_scp() {
    local corpus="$1" landmarks_dir="$2" datadir="$3" out="$4" s
    shift 4
    require_landmarks_dir "${landmarks_dir}"
    local set_dirs=()
    for s in "$@"; do set_dirs+=("${datadir}/${s}"); done
    python3 scripts/make_landmark_scp.py --corpus "${corpus}" --landmarks_dir "${landmarks_dir}" \
        --out "${datadir}/${out}" "${set_dirs[@]}"
}

# spk2utt_of <utt2spk>: speakers in first-appearance order with their utterances.
spk2utt_of() {
    awk '{ if (!($2 in u)) { o[++n] = $2; u[$2] = $1 } else u[$2] = u[$2] " " $1 }
         END { for (i = 1; i <= n; i++) print o[i], u[o[i]] }' "$1"
}

# subset_data_dir <src> <dst> <uttid list>: the listed utterances of every per-utterance
# file; recordings.scp is copied whole (segments refer to it by recording id).
subset_data_dir() {
    local src="$1" dst="$2" keep="$3" f
    mkdir -p "${dst}"
    for f in video_src.scp text utt2spk segments utt2dur; do
        [ -f "${src}/${f}" ] || continue
        awk 'NR == FNR { k[$1] = 1; next } ($1 in k)' "${keep}" "${src}/${f}" >"${dst}/${f}"
    done
    [ -f "${src}/recordings.scp" ] && cp "${src}/recordings.scp" "${dst}/recordings.scp"
    spk2utt_of "${dst}/utt2spk" >"${dst}/spk2utt"
}

# hold_out <src> <n> <held-out dst> <rest dst>: n utterances evenly spaced over the sorted
# list (so every part of a speaker-sorted list is represented) and the rest.
hold_out() {
    local src="$1" n="$2" held="$3" rest="$4" total tmp
    total=$(wc -l <"${src}/utt2spk")
    if [ "${n}" -ge "${total}" ]; then
        echo "hold_out: cannot hold out ${n} of ${total} utterances of ${src}" >&2
        return 1
    fi
    tmp="$(mktemp -d)"
    awk -v n="${total}" -v k="${n}" '{ i = NR - 1; f = (int(i * k / n) != int((i + 1) * k / n)) ? "held" : "rest"
                                       print $1 > (dir "/" f) }' dir="${tmp}" "${src}/utt2spk"
    subset_data_dir "${src}" "${held}" "${tmp}/held"
    subset_data_dir "${src}" "${rest}" "${tmp}/rest"
    rm -rf "${tmp}"
}

# data_dir_summary <dir>: one line for the log.
data_dir_summary() {
    local d="$1" n_txt=0
    [ -f "${d}/text" ] && n_txt=$(awk 'NF > 1' "${d}/text" | wc -l)
    echo "${d}: $(wc -l <"${d}/video_src.scp") utterances, $(wc -l <"${d}/spk2utt") speakers, ${n_txt} transcripts"
}
