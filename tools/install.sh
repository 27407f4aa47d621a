#!/usr/bin/env bash
# Set up espnet_usr2 on a fresh machine, the way ESPnet's tools/ does:
#   1. Debian packages sclite (sctk), espeak-ng, ffmpeg  -- when we are root
#   2. a virtual environment tools/venv with the tested versions
#        torch 2.11.0 + torchaudio 2.11.0 + espnet 202511, pip < 25
#   3. espnet_usr2 itself in editable mode, with its test extras
# Afterwards:  . tools/activate_python.sh
# Re-running is cheap: every step checks whether it is already done.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "${TOOLS_DIR}")"
VENV_DIR="${VENV_DIR:-${TOOLS_DIR}/venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.11.0"
ESPNET_VERSION="202511"
DEBIAN_PACKAGES=(sctk espeak-ng ffmpeg)

log() { echo "[tools/install.sh] $*"; }

missing_debian_packages() {
    local missing=()
    command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
    command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
    [ -x /usr/lib/sctk/bin/sclite ] || command -v sclite >/dev/null 2>&1 || missing+=(sctk)
    echo "${missing[@]:-}"
}

install_debian_packages() {
    local missing
    missing="$(missing_debian_packages)"
    if [ -z "${missing}" ]; then
        log "system packages present: ${DEBIAN_PACKAGES[*]}"
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian packages: ${missing}"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing} >/dev/null
    else
        log "WARNING: missing system packages: ${missing}"
        log "  install them as root:  apt-get update && apt-get install -y ${missing}"
        log "  (sctk provides sclite for scoring, ffmpeg decodes/encodes video,"
        log "   espeak-ng speaks the generated mini corpus). Continuing without them."
    fi
}

create_venv() {
    if [ ! -x "${VENV_DIR}/bin/python" ]; then
        log "creating virtual environment ${VENV_DIR}"
        "${PYTHON}" -m venv "${VENV_DIR}"
    fi
    # espnet's dependency ci_sdr declares a direct-URL dependency that pip >= 25 refuses.
    "${VENV_DIR}/bin/python" -m pip install -q "pip<25" "setuptools<74" wheel
}

install_python_packages() {
    local pip=("${VENV_DIR}/bin/python" -m pip install -q)
    if ! "${VENV_DIR}/bin/python" -c "import torch, torchaudio; assert torch.__version__.startswith('${TORCH_VERSION}')" 2>/dev/null; then
        log "installing torch==${TORCH_VERSION} torchaudio==${TORCH_VERSION} (several GB)"
        "${pip[@]}" "torch==${TORCH_VERSION}" "torchaudio==${TORCH_VERSION}"
    fi
    log "installing espnet==${ESPNET_VERSION} and espnet_usr2 (editable)"
    "${pip[@]}" "espnet==${ESPNET_VERSION}" "torch==${TORCH_VERSION}" "torchaudio==${TORCH_VERSION}"
    "${pip[@]}" -e "${REPO_DIR}[test]" "torch==${TORCH_VERSION}" "torchaudio==${TORCH_VERSION}"
}

install_face_landmarks() {
    # mediapipe 0.10.21 is the last release that bundles its face detection / face mesh
    # models (newer ones download a .task file at run time, impossible offline). Its
    # metadata asks for numpy<2, which espnet 202511 (numpy>=2) rules out, yet it runs
    # with numpy 2 (the face-mesh tests in test/prep/test_roi_extract.py run on it).
    # So it is installed without its declared dependencies; the ones it needs at run time
    # are listed here instead (its opencv-contrib-python and jax are not needed for face
    # meshes; protobuf<5 and opencv<4.11 are also pinned in setup.py).
    if "${VENV_DIR}/bin/python" -c "import mediapipe" 2>/dev/null; then
        return
    fi
    log "installing mediapipe==0.10.21 (face landmarks, offline models)"
    "${VENV_DIR}/bin/python" -m pip install -q --no-deps "mediapipe==0.10.21"
    "${VENV_DIR}/bin/python" -m pip install -q absl-py attrs flatbuffers "protobuf<5" \
        "opencv-python-headless<4.11" matplotlib "torch==${TORCH_VERSION}"
}

check_install() {
    "${VENV_DIR}/bin/python" - <<'PY'
import torch, torchaudio, espnet, espnet_usr2
from espnet_usr2.tasks.usr2 import USR2Task  # noqa: F401  (imports ESPnet's task system)
print(f"[tools/install.sh] OK: torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
      f"espnet {espnet.__version__}, espnet_usr2 {espnet_usr2.__version__}")
PY
}

main() {
    local start=${SECONDS}
    install_debian_packages
    create_venv
    install_python_packages
    install_face_landmarks
    check_install
    local missing
    missing="$(missing_debian_packages)"
    [ -z "${missing}" ] || log "still missing system packages: ${missing} (see above)"
    log "done in $((SECONDS - start)) s; venv size $(du -sh "${VENV_DIR}" | cut -f1)"
    log "activate with:  . ${TOOLS_DIR}/activate_python.sh"
}

main "$@"
