#!/usr/bin/env bash
# Slurm job runner with the run.pl interface:
#
#   utils/run_slurm.sh [options] JOB=1:N log/name.JOB.log command args ...
#   utils/run_slurm.sh [options] log/name.log command args ...
#
# Writes one batch script <logdir>/q/<name>.sh (an array job, task i runs the command
# with JOB=i and writes log/name.i.log as run_local.sh would), submits it with
# "sbatch --wait", and exits 0 only when every task ended with code 0 (each task leaves
# its code in <logdir>/q/<name>.<i>.rc). The command runs from the current directory
# with path.sh sourced, when it exists.
# Options:
#   --gpu N          GPUs per task (--gres=gpu:N)        --num_threads N  CPUs per task
#   --mem M          memory per task (e.g. 16G)          --time T         time limit
#   --partition P    partition                           --max-jobs-run N tasks at once (%N)
#   --name NAME      job name (default: the log name)    --extra "ARGS"   more sbatch arguments
#   --print          write the batch script to stdout, submit nothing
#   --requeue true   a task whose command exits with code 75 (usr2_train stopped by one of its
#                    --stop_signals after writing a resume point) is requeued (scontrol requeue)
#                    and runs again -- with --resume true it continues from that resume point
#   --signal_before S  with --requeue: Slurm sends SIGUSR1 S seconds before the time limit
#                    (--signal=B:USR1@S); the task passes it and SIGTERM on to its command
# $SBATCH / $SCONTROL name the sbatch / scontrol programs (default: sbatch, scontrol).
set -euo pipefail

gpu=0
num_threads=1
mem=""
time_limit=""
partition=""
max_jobs_run=""
name=""
extra=""
print_only=false
requeue=false
signal_before=""
preempted_code=75  # espnet_usr2.train.stop_signal.PREEMPTED_EXIT_CODE (EX_TEMPFAIL)

usage() {
    sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --gpu) gpu="$2"; shift 2 ;;
        --num_threads | --num-threads) num_threads="$2"; shift 2 ;;
        --mem) mem="$2"; shift 2 ;;
        --time) time_limit="$2"; shift 2 ;;
        --partition) partition="$2"; shift 2 ;;
        --max-jobs-run | --max_jobs_run) max_jobs_run="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --extra) extra="$2"; shift 2 ;;
        --print) print_only=true; shift ;;
        --requeue) requeue="$2"; shift 2 ;;
        --signal_before | --signal-before) signal_before="$2"; shift 2 ;;
        --config) shift 2 ;; # slurm.pl's option; settings come from the options above
        --*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ "$#" -ge 2 ] || usage
case "${requeue}" in true | false) ;; *) echo "$0: --requeue takes true or false, not ${requeue}" >&2; exit 1 ;; esac
[ -z "${signal_before}" ] || [ "${requeue}" = true ] \
    || { echo "$0: --signal_before goes with --requeue true" >&2; exit 1; }

# JOB=a:b range, log template and the command line (shared with the other runner)
. "$(dirname "${BASH_SOURCE[0]}")/job_spec.sh"

logdir="$(dirname "$(substitute "${logtemplate}" "${first}")")"
base="$(basename "${logtemplate}" .log)"
base="${base//.${jobvar:-JOB}/}"
[ -n "${name}" ] || name="${base}"
qdir="${logdir}/q"
script="${qdir}/${base}.sh"

# The batch script: a case over the array index, one branch per task, so that each
# task's command line is fixed here and needs no substitution on the compute node.
write_script() {
    local j
    echo "#!/usr/bin/env bash"
    echo "#SBATCH --job-name=${name}"
    echo "#SBATCH --array=${first}-${last}${max_jobs_run:+%${max_jobs_run}}"
    echo "#SBATCH --output=${qdir}/${base}.%a.out"
    echo "#SBATCH --cpus-per-task=${num_threads}"
    [ "${gpu}" -gt 0 ] && echo "#SBATCH --gres=gpu:${gpu}"
    [ -n "${mem}" ] && echo "#SBATCH --mem=${mem}"
    [ -n "${time_limit}" ] && echo "#SBATCH --time=${time_limit}"
    [ -n "${partition}" ] && echo "#SBATCH --partition=${partition}"
    [ "${requeue}" = true ] && echo "#SBATCH --requeue"
    [ -n "${signal_before}" ] && echo "#SBATCH --signal=B:USR1@${signal_before}"
    echo "cd $(printf '%q' "$(pwd)")"
    echo "[ -f ./path.sh ] && . ./path.sh"
    echo "task=\${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}"
    echo "case \"\${task}\" in"
    for ((j = first; j <= last; j++)); do
        echo "    ${j}) log=$(printf '%q' "$(substitute "${logtemplate}" "${j}")")"
        echo "       cmd=$(printf '%q' "$(substitute "${cmdline}" "${j}")") ;;"
    done
    echo "    *) echo \"unknown task \${task}\" >&2; exit 1 ;;"
    echo "esac"
    echo "mkdir -p \"\$(dirname \"\${log}\")\""
    echo "start=\$(date +%s)"
    # a requeued task (SLURM_RESTART_COUNT > 0) adds to the log of its earlier runs
    echo "[ \"\${SLURM_RESTART_COUNT:-0}\" -gt 0 ] || : >\"\${log}\""
    echo "{ echo \"# \${cmd}\"; echo \"# Started at \$(date) on \$(hostname), job \${SLURM_JOB_ID:-?}\"; } >>\"\${log}\""
    if [ "${requeue}" = true ]; then
        # the command runs in its own process group, which gets SIGUSR1 / SIGTERM passed on;
        # its shell ignores them (they are meant for the trainer, which catches them itself)
        echo "trap 'kill -s USR1 -- -\"\${child}\" 2>/dev/null || true' USR1"
        echo "trap 'kill -s TERM -- -\"\${child}\" 2>/dev/null || true' TERM"
        echo "setsid bash -c \"trap '' USR1 TERM; set -o pipefail; \${cmd}\" >>\"\${log}\" 2>&1 </dev/null &"
        echo "child=\$!"
        echo "while true; do wait \"\${child}\"; rc=\$?; kill -0 \"\${child}\" 2>/dev/null || break; done"
        echo "if [ \"\${rc}\" = ${preempted_code} ]; then"
        echo "    echo \"# Stopped with a resume point (code \${rc}) at \$(date): requeued\" >>\"\${log}\""
        echo "    \${SCONTROL:-scontrol} requeue \"\${SLURM_ARRAY_JOB_ID:-\${SLURM_JOB_ID}}_\${task}\" && exit 0"
        echo "    echo \"# scontrol requeue failed\" >>\"\${log}\""
        echo "fi"
    else
        echo "bash -c \"set -o pipefail; \${cmd}\" >>\"\${log}\" 2>&1 </dev/null"
        echo "rc=\$?"
    fi
    echo "{ echo \"# Accounting: time=\$((\$(date +%s) - start)) seconds\"; echo \"# Ended (code \${rc}) at \$(date)\"; } >>\"\${log}\""
    echo "echo \"\${rc}\" >$(printf '%q' "${qdir}/${base}").\${task}.rc"
    echo "exit \"\${rc}\""
}

if [ "${print_only}" = true ]; then
    write_script
    exit 0
fi

mkdir -p "${qdir}"
write_script >"${script}"
for ((j = first; j <= last; j++)); do rm -f "${qdir}/${base}.${j}.rc"; done
# shellcheck disable=SC2086
"${SBATCH:-sbatch}" --wait ${extra} "${script}" >"${qdir}/${base}.submit.log" 2>&1 || true

failed=()
for ((j = first; j <= last; j++)); do
    rc_file="${qdir}/${base}.${j}.rc"
    if [ ! -f "${rc_file}" ] || [ "$(cat "${rc_file}")" != 0 ]; then
        failed+=("${j}")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "$0: ${#failed[@]} of $((last - first + 1)) task(s) failed or did not run: see" \
        "$(substitute "${logtemplate}" "${failed[0]}") and ${qdir}/${base}.submit.log (failed: ${failed[*]})" >&2
    exit 1
fi
exit 0
