# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are read by the script that sources this
# Sourced (not run) by run_local.sh and run_slurm.sh once their own options are parsed.
# Parses the rest of the command line, "[JOB=a:b | JOB=n] LOGTEMPLATE command ...", in the
# caller's positional parameters and sets:
#   jobvar first last   the job variable and its range (no variable: one job, index 1)
#   logtemplate         the log path, with the job variable in it
#   substitute TEXT N   TEXT with the job variable (as a whole word) replaced by N
#   cmdline             the command, shell-quoted where needed, ready for "bash -c"
# The caller must define usage().
jobvar=""
first=1
last=1
if [[ "$1" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+):([0-9]+)$ ]]; then
    jobvar="${BASH_REMATCH[1]}"; first="${BASH_REMATCH[2]}"; last="${BASH_REMATCH[3]}"; shift
elif [[ "$1" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)$ ]]; then
    jobvar="${BASH_REMATCH[1]}"; first="${BASH_REMATCH[2]}"; last="${first}"; shift
fi
if [ "${first}" -gt "${last}" ]; then
    echo "$0: empty job range ${first}:${last}" >&2
    exit 1
fi
[ "$#" -ge 2 ] || usage
logtemplate="$1"
shift

# Replace the job variable as a whole word only (JOB in "keys.JOB.scp", not in "JOBS").
substitute() { # <text> <index>
    if [ -z "${jobvar}" ]; then
        printf '%s' "$1"
    else
        printf '%s' "$1" | sed -E ":a;s/(^|[^A-Za-z0-9_])${jobvar}([^A-Za-z0-9_]|\$)/\1$2\2/;ta"
    fi
}

cmdline=""
for arg in "$@"; do
    if [[ "${arg}" =~ [[:space:]] ]] || [ -z "${arg}" ]; then
        cmdline+="$(printf '%q' "${arg}") "
    else
        cmdline+="${arg} "
    fi
done
