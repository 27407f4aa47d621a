"""Optimizer options the device decides: PyTorch's fused Adam / AdamW on CUDA.

ESPnet builds the optimizer as ``optim_class(model.parameters(), **optim_conf)``. On CUDA,
PyTorch's default Adam / AdamW implementation is the multi-tensor ``foreach`` one, a handful
of kernel launches per parameter group and step; ``fused=True`` does the whole update in one
kernel per group and dtype (issue 23 point 4: fewer launches per step). The update is the
same algorithm; fused and foreach differ only in rounding.

What this changes and what it leaves alone:

- CUDA parameters, ``optim`` adam or adamw, ``optim_conf`` naming neither ``fused`` nor
  ``foreach``: ``fused: true`` is added (logged);
- a config that names ``fused`` or ``foreach`` is used as written;
- on CPU nothing changes (a CPU user who does not ask for it keeps PyTorch's default).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable

import torch

FUSED_OPTIMIZERS = ("adam", "adamw")


def fused_on_cuda(optim: str, optim_conf: Dict[str, Any], parameters: Iterable[torch.nn.Parameter]) -> Dict[str, Any]:
    """``optim_conf`` with ``fused: true`` when every trainable parameter is a CUDA float
    tensor and the config leaves the implementation open; otherwise ``optim_conf`` itself."""
    if optim not in FUSED_OPTIMIZERS or "fused" in optim_conf or "foreach" in optim_conf:
        return optim_conf
    trainable = [p for p in parameters if p.requires_grad]
    if not trainable or not all(p.is_cuda and p.is_floating_point() for p in trainable):
        return optim_conf
    logging.info(f"optimizer {optim}: fused CUDA implementation (optim_conf fused: true)")
    return {**optim_conf, "fused": True}
