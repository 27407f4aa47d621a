#!/usr/bin/env bash
# Data of the Huge setting (stage 1 of usr2.sh): LRS2 + LRS3 labelled, VoxCeleb2 (English)
# + AVSpeech unlabelled. Each corpus is prepared by its own recipe's local/data.sh (linked
# here as local/<corpus>_data.sh; same db.sh variables, same layouts, see their READMEs)
# into data/local/<corpus>/, and its sets are then published under names that cannot
# collide between corpora (both LRS corpora have "pretrain" and "test"):
#   data/lrs2_{pretrain,train,val,test}     data/lrs3_{pretrain,trainval,valid,test}
#   data/vox2 [vox2_test, vox2_test_len*]    data/avspeech [avspeech_test]
# plus data/face_hint.scp (AVSpeech's face centres, stage 2 --face_hint) and, when any
# landmark directory is given, data/lm.scp (stage 2 --landmarks; utterances it lacks get
# face detection). Utterance ids are checked to be unique over all published sets.
set -euo pipefail

max_len=16
valid_size=1200
lrs2_landmarks_dir=""
lrs3_landmarks_dir=""
vox2_landmarks_dir=""
avspeech_landmarks_dir=""
. scripts/data_options.sh  # + --nj, --datadir; parses the options, reads db.sh

# Every corpus path first: a missing AVSpeech should not surface after hours of LRS prep.
see='(layouts: ../../{lrs2,lrs3,vox2,avspeech}/usr2/README.md)'
require_corpus LRS2 "LRS2=.../mvlrs_v1 with main/ and pretrain/ ${see}" main pretrain
require_corpus LRS3 "LRS3=.../lrs3 with pretrain/ trainval/ test/ ${see}" pretrain trainval test
require_corpus VOXCELEB2 "VOXCELEB2=.../voxceleb2 with dev/mp4/ ${see}" dev/mp4
require_file VOX2_EN_LIST "VOX2_EN_LIST=AV-HuBERT's vox-en.id(.gz) ${see}"
require_corpus AVSPEECH "AVSPEECH=.../avspeech with clips/ and avspeech_train.csv ${see}" clips

work="${datadir}/local"
lm_opt() { [ -z "$1" ] || echo "--landmarks_dir $1"; }
# shellcheck disable=SC2046
local/lrs2_data.sh --datadir "${work}/lrs2" --max_len "${max_len}" --nj "${nj}" $(lm_opt "${lrs2_landmarks_dir}")
# shellcheck disable=SC2046
local/lrs3_data.sh --datadir "${work}/lrs3" --max_len "${max_len}" --valid_size "${valid_size}" --nj "${nj}" \
    $(lm_opt "${lrs3_landmarks_dir}")
# shellcheck disable=SC2046
local/vox2_data.sh --datadir "${work}/vox2" --max_len "${max_len}" --nj "${nj}" $(lm_opt "${vox2_landmarks_dir}")
# shellcheck disable=SC2046
local/avspeech_data.sh --datadir "${work}/avspeech" --nj "${nj}" $(lm_opt "${avspeech_landmarks_dir}")

# publish <corpus> <prefix>: data/<prefix><set> for every set of data/local/<corpus>/. The
# list files are copied; the cut segments stay where they are (video_src.scp holds
# absolute paths), so nothing is cut twice.
published=""
publish() {
    local corpus="$1" prefix="$2" d name dst
    for d in "${work}/${corpus}"/*/; do
        d="${d%/}"
        [ -f "${d}/video_src.scp" ] || continue
        name="${prefix}$(basename "${d}")"
        dst="${datadir}/${name}"
        rm -rf "${dst}"
        mkdir -p "${dst}"
        find "${d}" -mindepth 1 -maxdepth 1 -type f -exec cp {} "${dst}/" \;
        published+=" ${name}"
    done
}
publish lrs2 lrs2_
publish lrs3 lrs3_
publish vox2 ""
publish avspeech ""

# An utterance id in two sets would be merged by stage 4's set combination.
# shellcheck disable=SC2086
dups=$(for s in ${published}; do awk '{ print $1 }' "${datadir}/${s}/utt2spk"; done | LC_ALL=C sort | uniq -d | head -n 3)
[ -z "${dups}" ] || { echo "$0: utterance ids in more than one set, e.g.: ${dups}" >&2; exit 1; }

cp "${work}/avspeech/face_hint.scp" "${datadir}/face_hint.scp"
rm -f "${datadir}/lm.scp"
lm_lists=""  # only the corpora given landmarks this time (never a stale list)
for c in lrs2 lrs3 vox2 avspeech; do
    lm_dir_var="${c}_landmarks_dir"
    if [ -n "${!lm_dir_var}" ]; then lm_lists+=" ${work}/${c}/lm.scp"; fi
done
if [ -n "${lm_lists}" ]; then
    # shellcheck disable=SC2086
    LC_ALL=C sort -k1,1 ${lm_lists} >"${datadir}/lm.scp"
    echo "$(basename "$0"): ${datadir}/lm.scp: $(wc -l <"${datadir}/lm.scp") utterances with precomputed landmarks" \
        "(the others get face detection in stage 2)"
fi
for s in ${published}; do echo "$(basename "$0"): $(data_dir_summary "${datadir}/${s}")"; done
