"""Counting the calls that make a training step wait for the GPU (issue 23, item 3).

On a GPU every read of a tensor's value on the host -- ``item``, ``tolist``, ``bool()`` /
``int()`` / ``float()`` of a tensor, ``nonzero``, indexing with a boolean mask -- stops the
host until the device has caught up. On the CPU they cost nothing, so a step is run on the
CPU and these calls are counted by the espnet_usr2 function that made them (ESPnet's own
calls are put on the espnet_usr2 function that called into ESPnet):

* :class:`HostReads` (a ``TorchFunctionMode``): the Python-level reads;
* :class:`DataDependentOps` (a ``TorchDispatchMode``): ``_local_scalar_dense`` (what the
  reads become), and the ops whose output shape depends on the data (``nonzero``,
  ``masked_select``, ``unique``, ``repeat_interleave``, boolean-mask indexing), which the
  Python-level count misses when ESPnet's code makes them.

A read of a CPU tensor (a crop offset drawn from the CPU generator) is counted too; whoever
bounds the count says which ones those are. Used by ``test/train/test_host_syncs.py`` and
``bench/count_host_syncs.py``, with the step's batch :func:`semi_batch`.
"""

from __future__ import annotations

import collections
import traceback
from typing import Counter, Tuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

TOKENS = ["<blank>", "<unk>", *"abcdef", "<space>", "<sos/eos>"]
SPF = 640  # audio samples per video frame


def semi_batch(frames=(20, 16, 12, 18), tokens=(4, 3, 2, 1), labelled=2, seed=0):
    """Padded random audio, video and text; the first ``labelled`` utterances have transcripts."""
    g = torch.Generator().manual_seed(seed)
    lens, tlens = torch.tensor(frames), torch.tensor(tokens)
    n, t = len(frames), max(frames)
    video = torch.rand(n, t, 96, 96, generator=g) * 255
    speech = torch.randn(n, t * SPF, generator=g)
    text = torch.randint(2, len(TOKENS) - 2, (n, max(tokens)), generator=g)
    is_labelled = torch.arange(n) < labelled
    for i in range(n):
        video[i, frames[i] :] = 0
        speech[i, frames[i] * SPF :] = 0
        text[i, tokens[i] if is_labelled[i] else 0 :] = -1
    return dict(
        speech=speech,
        speech_lengths=lens * SPF,
        video=video,
        video_lengths=lens,
        text=text,
        text_lengths=torch.where(is_labelled, tlens, 0),
        labelled=is_labelled.long().unsqueeze(1),
    )


HOST_READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero"}
DATA_DEPENDENT_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "repeat_interleave")


def call_site() -> str:
    """``<module path>:<function>`` of the innermost espnet_usr2 frame on the stack."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/espnet_usr2/" in frame.filename and "/espnet_usr2/testing/" not in frame.filename:
            return f"{frame.filename.split('/espnet_usr2/')[-1]}:{frame.name}"
    return "(outside espnet_usr2)"


class HostReads(TorchFunctionMode):
    """Python-level reads of tensor values, counted per call site."""

    def __init__(self):
        super().__init__()
        self.sites: Counter[str] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.sites[call_site()] += 1
        return func(*args, **(kwargs or {}))


class DataDependentOps(TorchDispatchMode):
    """ATen ops that read a value or size their output from the data, per call site and op."""

    def __init__(self):
        super().__init__()
        self.sites: Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        indices = args[1] if name.startswith("aten.index.") and len(args) > 1 else ()
        bool_index = any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())
        if bool_index or any(op in name for op in DATA_DEPENDENT_OPS):
            self.sites[f"{call_site()} {'aten.index (bool mask)' if bool_index else name}"] += 1
        return func(*args, **(kwargs or {}))


def count_training_step(model: torch.nn.Module, batch: dict) -> Tuple[Counter[str], Counter[str]]:
    """(host reads, data-dependent ops) of one step: forward, backward, EMA teacher update."""
    host, ops = HostReads(), DataDependentOps()
    with host, ops:
        loss = model(**batch)[0]
        loss.backward()
        model.update_teacher()
    return host.sites, ops.sites
