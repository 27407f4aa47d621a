# shellcheck shell=bash
# shellcheck disable=SC2034  # the *_cmd variables are read by the script that sources this
# Job runners of the usr2 recipes (sourced). Stages run their parallel work as
#     ${train_cmd}  [--gpu N] log/train.log  python -m ...
#     ${decode_cmd} JOB=1:N   log/decode.JOB.log python -m ... --key_file keys.JOB.scp
# Choose the backend with cmd_backend (or export USR2_CMD_BACKEND):
#   local  parallel processes on this machine (utils/run_local.sh)
#   slurm  sbatch array jobs, waits for them (utils/run_slurm.sh; queue settings below)
# With ESPNET_ROOT pointing at an ESPnet checkout, its Kaldi-style runners are used
# instead (utils/run.pl, utils/slurm.pl with conf/slurm.conf), as in ESPnet recipes.
cmd_backend="${USR2_CMD_BACKEND:-local}"

# Kaldi-style utils of an ESPnet checkout, if any.
__usr2_espnet_utils=""
if [ -n "${ESPNET_ROOT:-}" ]; then
    for __d in "${ESPNET_ROOT}/utils" "${ESPNET_ROOT}/egs2/TEMPLATE/asr1/utils"; do
        if [ -x "${__d}/run.pl" ]; then __usr2_espnet_utils="${__d}"; break; fi
    done
    if [ -z "${__usr2_espnet_utils}" ]; then
        echo "cmd.sh: ESPNET_ROOT=${ESPNET_ROOT} has no utils/run.pl; using this recipe's runners" >&2
    fi
fi

case "${cmd_backend}" in
    local)
        if [ -n "${__usr2_espnet_utils}" ]; then
            train_cmd="${__usr2_espnet_utils}/run.pl"
        else
            train_cmd="utils/run_local.sh"
        fi
        decode_cmd="${train_cmd}"
        cuda_cmd="${train_cmd}"
        ;;
    slurm)
        if [ -n "${__usr2_espnet_utils}" ]; then
            train_cmd="${__usr2_espnet_utils}/slurm.pl --config conf/slurm.conf"
        else
            # Site settings: partition, time limit, memory per task.
            train_cmd="utils/run_slurm.sh --partition ${USR2_SLURM_PARTITION:-gpu} --time ${USR2_SLURM_TIME:-72:00:00} --mem ${USR2_SLURM_MEM:-32G}"
        fi
        decode_cmd="${train_cmd}"
        cuda_cmd="${train_cmd}"
        # Preemptible partitions / time limits: USR2_SLURM_REQUEUE=true requeues a training that
        # stopped at a resume point (usr2.sh --stop_signals SIGTERM,SIGUSR1), with SIGUSR1 sent
        # USR2_SLURM_SIGNAL_BEFORE seconds before the time limit
        if [ "${USR2_SLURM_REQUEUE:-false}" = true ] && [ -z "${__usr2_espnet_utils}" ]; then
            cuda_cmd+=" --requeue true --signal_before ${USR2_SLURM_SIGNAL_BEFORE:-300}"
        fi
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local or slurm)" >&2
        # sourced: return; run as a script by mistake: exit
        # shellcheck disable=SC2317
        return 1 2>/dev/null || exit 1
        ;;
esac
unset __usr2_espnet_utils __d
