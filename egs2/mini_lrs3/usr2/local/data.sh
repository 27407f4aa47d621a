#!/usr/bin/env bash
# Data preparation of the mini LRS3 corpus (stage 1 of usr2.sh): the corpus has LRS3's
# layout, so this is the shared LRS3-layout preparation pointed at ${MINI_LRS3} (db.sh).
# Options are those of scripts/lrs3_data.sh (--splits, --long_test, --valid_from, --valid_size).
set -euo pipefail

. ./db.sh

if [ -z "${MINI_LRS3}" ] || [ ! -d "${MINI_LRS3}" ]; then
    echo "$0: the mini corpus is not at MINI_LRS3='${MINI_LRS3}' (db.sh)." >&2
    echo "    Generate it with: python -m espnet_usr2.bin.usr2_make_mini_lrs3 --out ${MINI_LRS3:-downloads/mini_lrs3}" >&2
    echo "    (run.sh does this), or set MINI_LRS3 to where it is." >&2
    exit 1
fi
if [ ! -f "${MINI_LRS3}/corpus_info.json" ]; then
    echo "$0: ${MINI_LRS3}/corpus_info.json is missing: the corpus was not generated completely;" \
        "rerun the generator (usr2_make_mini_lrs3 --overwrite)" >&2
    exit 1
fi

scripts/lrs3_data.sh --corpus "${MINI_LRS3}" "$@"
