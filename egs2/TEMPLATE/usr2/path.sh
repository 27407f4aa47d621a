# shellcheck shell=bash
# Environment of the usr2 recipes (sourced). Activates the repository's venv when it
# exists (tools/install.sh builds it), puts sclite (Debian sctk) on PATH, and keeps
# Python output unbuffered so that job logs fill while a job runs.
__usr2_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)"
if [ -f "${__usr2_root}/tools/activate_python.sh" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
    # shellcheck disable=SC1091
    . "${__usr2_root}/tools/activate_python.sh"
fi
[ -d /usr/lib/sctk/bin ] && export PATH="${PATH}:/usr/lib/sctk/bin"
export PYTHONUNBUFFERED=1
# One OpenMP/MKL thread per process (as ESPnet's path.sh): parallelism comes from the job
# runner's processes, and oversubscribed OpenMP threads spin and run many times slower
# on a busy machine. Export OMP_NUM_THREADS before running to change it.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONIOENCODING=UTF-8
export LC_ALL=C
unset __usr2_root
