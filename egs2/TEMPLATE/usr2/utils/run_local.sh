#!/usr/bin/env bash
# Local parallel job runner with the run.pl interface used by Kaldi/ESPnet recipes:
#
#   utils/run_local.sh [options] JOB=1:N log/name.JOB.log command args ...
#   utils/run_local.sh [options] log/name.log command args ...
#
# Every word "JOB" (the name before "=", any name works) in the log path and in the
# command is replaced by the job index; jobs run at most --max-jobs-run at a time
# (default: number of CPUs). The command line is run by bash: an argument without
# whitespace is pasted as is (so "\|" or "\>" on the caller's line become a pipe or a
# redirection, as with run.pl), an argument containing whitespace is quoted.
# Each log gets the command, start time, output, and "# Ended (code C)".
# Exit status: 0 when every job succeeded, 1 otherwise (after all jobs have finished),
# naming the failed logs.
# Accepted for compatibility with cluster runners and ignored here:
#   --gpu N, --mem M, --num_threads N, --time T, --partition P, --config F, --name N
set -euo pipefail

# The CPUs, not OMP_NUM_THREADS: GNU nproc honours that variable, and path.sh sets it to 1
# for the jobs' own threads, which would run the jobs one at a time.
max_jobs_run=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --max-jobs-run | --max_jobs_run) max_jobs_run="$2"; shift 2 ;;
        --gpu | --mem | --num_threads | --num-threads | --time | --partition | --config | --name) shift 2 ;;
        --*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ "$#" -ge 2 ] || usage

# JOB=a:b range, log template and the command line (shared with the other runner)
. "$(dirname "${BASH_SOURCE[0]}")/job_spec.sh"

run_one() { # <index>
    local log cmd rc start
    log="$(substitute "${logtemplate}" "$1")"
    cmd="$(substitute "${cmdline}" "$1")"
    mkdir -p "$(dirname "${log}")"
    start=$(date +%s)
    {
        echo "# ${cmd}"
        echo "# Started at $(date)"
    } >"${log}"
    set +e
    bash -c "set -o pipefail; ${cmd}" >>"${log}" 2>&1 </dev/null
    rc=$?
    set -e
    {
        echo "# Accounting: time=$(($(date +%s) - start)) seconds"
        echo "# Ended (code ${rc}) at $(date)"
    } >>"${log}"
    return "${rc}"
}

declare -A pid2job=()
failed=()
reap_one() {
    local pid
    # wait -n -p needs bash >= 5.1; fall back to polling the known pids otherwise.
    if wait -n -p pid 2>/dev/null; then
        unset "pid2job[${pid}]"
        return 0
    elif [ -n "${pid:-}" ] && [ -n "${pid2job[${pid}]+x}" ]; then
        failed+=("${pid2job[${pid}]}")
        unset "pid2job[${pid}]"
        return 0
    fi
    for pid in "${!pid2job[@]}"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            wait "${pid}" || failed+=("${pid2job[${pid}]}")
            unset "pid2job[${pid}]"
            return 0
        fi
    done
    sleep 0.1
}

for ((j = first; j <= last; j++)); do
    while [ "${#pid2job[@]}" -ge "${max_jobs_run}" ]; do reap_one; done
    run_one "${j}" &
    pid2job[$!]="${j}"
done
while [ "${#pid2job[@]}" -gt 0 ]; do reap_one; done

if [ "${#failed[@]}" -gt 0 ]; then
    mapfile -t sorted < <(printf '%s\n' "${failed[@]}" | sort -n)
    echo "$0: ${#failed[@]} of $((last - first + 1)) job(s) failed: see $(substitute "${logtemplate}" "${sorted[0]}")" \
        "(failed: ${sorted[*]})" >&2
    exit 1
fi
exit 0
