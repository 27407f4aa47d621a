#!/usr/bin/env bash
# The option header of a corpus local/data.sh (stage 1 of usr2.sh), sourced without arguments
# after the defaults of the script's own options:
#
#     max_len=16
#     landmarks_dir=""
#     . scripts/data_options.sh
#
# Every corpus data.sh also takes --nj (jobs) and --datadir (where its data directories go).
# The options are parsed here: utils/parse_options.sh reads and shifts the positional
# parameters of the data.sh, which a file sourced without arguments shares. Then db.sh gives
# the corpus paths, scripts/corpus_check.sh the checks of them (require_corpus, require_file)
# and scripts/data_dir_utils.sh the data-directory helpers.
# shellcheck disable=SC2034  # read by the data.sh that sources this
nj=4 datadir=data

. utils/parse_options.sh
. ./db.sh
. scripts/corpus_check.sh
. scripts/data_dir_utils.sh
