# shellcheck shell=bash
# Checks of corpus paths set in db.sh (sourced by local/data.sh of the real-corpus recipes).
#
#   . scripts/corpus_check.sh
#   require_corpus LRS3 "<layout text>" pretrain trainval test
#
# Recipes never download a corpus, so a wrong path in db.sh is the most common first
# error: stop at once with the variable's name, its value and the layout we expect,
# instead of failing later on a missing file deep inside a stage.

# require_corpus <variable> <layout description> [<entry that must exist> ...]
require_corpus() {
    local var="$1" layout="$2" dir entry
    shift 2
    dir="${!var:-}"
    if [ -z "${dir}" ]; then
        corpus_error "${var} is not set. Set ${var} in db.sh (or export ${var}=...) to your local copy." "${layout}"
    fi
    if [ ! -d "${dir}" ]; then
        corpus_error "${var}='${dir}' (db.sh) is not a directory." "${layout}"
    fi
    for entry in "$@"; do
        if [ ! -e "${dir}/${entry}" ]; then
            corpus_error "${var}='${dir}' (db.sh) has no '${entry}': it does not look like the expected layout." "${layout}"
        fi
    done
}

# require_file <variable> <layout description>: a variable naming a file (a list, a CSV).
require_file() {
    local var="$1" layout="$2" f
    f="${!var:-}"
    [ -n "${f}" ] || corpus_error "${var} is not set. Set ${var} in db.sh (or export ${var}=...)." "${layout}"
    [ -f "${f}" ] || corpus_error "${var}='${f}' (db.sh) is not a file." "${layout}"
}

corpus_error() {
    {
        echo "$(basename "$0"): error: $1"
        echo "Expected layout:"
        # shellcheck disable=SC2001
        echo "$2" | sed 's/^/    /'
    } >&2
    exit 1
}
