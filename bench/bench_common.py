"""Helpers shared by the benchmark scripts in bench/ (not used by the package or the tests).

The scripts run as ``python bench/<name>.py``, so this directory is on ``sys.path`` and
they import these as ``from bench_common import ...``.
"""

from __future__ import annotations

import ctypes
import re
import resource
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps video
FPS = 25


def token_list(size: int) -> List[str]:
    """An ESPnet token list of ``size`` entries: ``<blank>``, ``<unk>``, dummies, ``<sos/eos>``."""
    return ["<blank>", "<unk>", *(f"tok{i}" for i in range(size - 3)), "<sos/eos>"]


def random_av(lengths: List[int], seed: int) -> Dict[str, torch.Tensor]:
    """Padded random audio (B, T*640) and video (B, T, 96, 96) with their lengths."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    n, t = len(lengths), max(lengths)
    speech = torch.randn(n, t * SAMPLES_PER_FRAME, generator=g) * 0.1
    video = torch.rand(n, t, 96, 96, generator=g) * 255
    for i, frames in enumerate(lengths):
        speech[i, frames * SAMPLES_PER_FRAME :] = 0
        video[i, frames:] = 0
    return dict(speech=speech, speech_lengths=lens * SAMPLES_PER_FRAME, video=video, video_lengths=lens)


def status_mb(key: str) -> Optional[float]:
    """A memory figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None
    except OSError:
        return None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``), so RSS = memory in use."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def max_rss_mb() -> float:
    """Whole-process peak RSS so far (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Measured:
    """Wall / CPU seconds and extra peak RSS (MB, None if unmeasurable) of one call.

    The kernel's peak-RSS mark is reset (``/proc/self/clear_refs`` <- 5) before the call and
    read back (``VmHWM``) after it: ``extra_mb`` is the peak during the call minus the RSS
    just before it, what the call itself needs (weights already loaded are excluded);
    ``peak_mb`` is the whole process's peak during the call.
    """

    def __init__(self, fn: Callable[[], object]):
        can_reset = _reset_peak_rss()
        before = status_mb("VmRSS")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        self.result = fn()
        self.wall = time.perf_counter() - wall0
        self.cpu = time.process_time() - cpu0
        peak = status_mb("VmHWM")
        measurable = can_reset and peak is not None and before is not None
        self.peak_mb = peak if measurable else None
        self.extra_mb = peak - before if measurable else None


def write_lm_run_config(lm_config: Path, tokens: List[str], out_dir: Path) -> Path:
    """The ``config.yaml`` an ``espnet2.bin.lm_train`` run of ``lm_config`` would write (with
    ``tokens``), in ``out_dir``: an LM with random weights is ``(this file, lm_file=None)``."""
    import yaml
    from espnet2.tasks.lm import LMTask

    tok_file = out_dir / "tokens.txt"
    tok_file.write_text("\n".join(tokens) + "\n")
    args = LMTask.get_parser().parse_args(
        [
            "--config",
            str(lm_config),
            "--token_list",
            str(tok_file),
            "--token_type",
            "char",
            "--output_dir",
            str(out_dir),
        ]
    )
    config = out_dir / "config.yaml"
    config.write_text(yaml.safe_dump(vars(args)))
    return config


# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendors' data sheets, matched
# against torch.cuda.get_device_name(); the SXM parts' figures (H100 PCIe: 756e12).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def peak_bf16_flops(device_name: str) -> Optional[float]:
    """The dense bf16 peak of a known GPU named ``device_name`` (None if unknown)."""
    for key, flops in PEAK_BF16_FLOPS.items():
        if key.lower() in device_name.lower():
            return flops
    return None


def cuda_synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA), so wall-clock timings include them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
