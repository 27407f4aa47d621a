#!/usr/bin/env bash
# GPU check (issue 12 point 5): the Base model's training step in bf16 for USR 2.0 CTC-driven
# mode, AR mode and USR v1 (step time, video frames/s, peak memory, MFU), the pseudo-label
# generation ratio (CTC-driven vs AR greedy), the decoding real-time factor of the fast
# beam search vs ESPnet's at beam 40, and (issue 23 point 6) the default and the optimised
# training path side by side (step-time ratio, MFU, peak memory, the first 20 losses of
# both), in one run of at most 8 minutes.
#
#   bash bench/gpu_check.sh [OUT_DIR] [bench_gpu_check.py options...]
#   bash bench/gpu_check.sh exp/gpu_check                 # OUT_DIR/gpu_check.{json,md}, log.txt
#   bash bench/gpu_check.sh /tmp/g --device cpu --quick --config egs2/TEMPLATE/usr2/conf/train_usr2_tiny.yaml
#
# GPU_CHECK_LIMIT_S (default 480) bounds the whole run; the options after OUT_DIR override the
# defaults below (argparse: the last one wins). Python: tools/venv if installed, else python3
# (it must import torch and espnet; the repository is put on PYTHONPATH).
set -euo pipefail

out_dir=${1:-exp/gpu_check}
[ $# -gt 0 ] && shift
limit=${GPU_CHECK_LIMIT_S:-480}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${repo}"
if [ -f tools/venv/bin/activate ]; then
    # shellcheck disable=SC1091
    . tools/activate_python.sh
fi
export PYTHONPATH="${repo}${PYTHONPATH:+:${PYTHONPATH}}" PYTHONUNBUFFERED=1
mkdir -p "${out_dir}"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(hostname), limit ${limit} s"
    if command -v nvidia-smi >/dev/null; then
        timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    else
        echo "nvidia-smi: not found"
    fi
    timeout 60 python3 -c 'import sys, torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cuda available {torch.cuda.is_available()}")
for i in range(torch.cuda.device_count()):
    print(f"device {i}: {torch.cuda.get_device_name(i)}")
import espnet; print(f"espnet {espnet.__version__}")'
} 2>&1 | tee "${out_dir}/environment.txt"

left=$(( limit - SECONDS ))
if [ "${left}" -le 0 ]; then
    echo "gpu_check: no time left of the ${limit} s limit after the environment check" >&2
    exit 124
fi
timeout --kill-after=10 "${left}" python3 bench/bench_gpu_check.py \
    --config egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml --device cuda --out_dir "${out_dir}" --compare_paths "$@" \
    2>&1 | tee "${out_dir}/log.txt"
echo "gpu_check: ${SECONDS} s; summary in ${out_dir}/gpu_check.md and ${out_dir}/gpu_check.json"
