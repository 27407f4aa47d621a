# shellcheck shell=bash
# Source this file to use the environment that tools/install.sh built.
_usr2_tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -f "${_usr2_tools_dir}/venv/bin/activate" ]; then
    echo "espnet_usr2: no virtual environment at ${_usr2_tools_dir}/venv; run tools/install.sh first" >&2
    # sourced: return; run as a script by mistake: exit
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "${_usr2_tools_dir}/venv/bin/activate"
# Debian's sctk installs sclite outside PATH.
[ -d /usr/lib/sctk/bin ] && export PATH="${PATH}:/usr/lib/sctk/bin"
unset _usr2_tools_dir
