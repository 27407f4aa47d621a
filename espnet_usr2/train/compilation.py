"""Compiling the training step's networks with ``torch.compile`` (issue 23 point 2).

USR's training code compiles its model (``compile_model: True`` in its configs); USR 2.0's
paper says nothing about it. Here compilation is optional (``--compile true``; off by
default) and works per *layer*, not on the whole model:

* each ResNet front-end's ``stem`` and ``trunk`` (the video ResNet-18 is ~60 % of a Base
  step's device time: batch norm, swish and the residual additions fuse around cuDNN's
  convolutions);
* every encoder block and every decoder layer. The blocks of a stack share one compiled
  graph (PyTorch inlines the module's parameters as graph inputs), so a 12-block encoder
  compiles once, not twelve times.

The Python around them (masks, the stacking of v / a / av, pseudo-labelling, the EMA
update) stays eager, so nothing data-dependent breaks a graph. Compilation is in place
(``nn.Module.compile``): parameter names, ``state_dict`` keys and checkpoints stay what they
are, and the EMA teacher's copies of the same layers are compiled as well.

Shapes. Every batch has its own time length, and one step runs each layer on several
(labelled and unlabelled halves, three stacked modalities, the teacher's pass).
``torch.compile``'s automatic dynamic shapes make a dimension symbolic once it has changed,
which already happens within the first step: the tiny model compiles 11 graphs in its first
step and none after, whatever the later lengths (``test/train/test_compilation.py``).
``--compile_pad_frames N`` also pads every batch's time axis to a multiple of N video frames
(the audio to the same duration), so the shapes a run sees are a handful of buckets: what
``--compile_mode reduce-overhead`` needs, whose CUDA graphs are recorded per shape. The
padding is zeros behind the lengths, which every loss and mask ignores; only the front-ends'
batch-norm statistics see the extra zero frames (as they already see every batch's
padding), so a padded run is not bit-identical to an unpadded one.
"""

from __future__ import annotations

import logging
from typing import Callable, Collection, Dict, List, Tuple

import torch
from espnet.nets.pytorch_backend.transformer.decoder_layer import DecoderLayer
from torch import nn

from espnet_usr2.model.encoder import RelPosEncoderLayer
from espnet_usr2.model.frontends import ResNet1DAudioFrontend, ResNet3DVideoFrontend

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LAYER_TYPES = (RelPosEncoderLayer, DecoderLayer)
RESNET_FRONTENDS = (ResNet1DAudioFrontend, ResNet3DVideoFrontend)


def compiled_parts(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of every part :func:`compile_for_training` compiles, in model order:
    the ResNet front-ends' stems and trunks, the encoder blocks, the decoder layers (the EMA
    teacher's copies included)."""
    parts = []
    for name, module in model.named_modules():
        if isinstance(module, RESNET_FRONTENDS):
            parts += [(f"{name}.stem", module.stem), (f"{name}.trunk", module.trunk)]
        elif isinstance(module, LAYER_TYPES):
            parts.append((name, module))
    return parts


def compile_for_training(model: nn.Module, mode: str = "default", backend: str = "inductor") -> int:
    """Compile :func:`compiled_parts` in place; returns how many modules were wrapped."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile_mode {mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    parts = compiled_parts(model)
    if not parts:
        raise ValueError(
            "--compile true found nothing to compile: the model has no ResNet front-end, "
            "relative-position encoder block or transformer decoder layer"
        )
    options: Dict[str, object] = {"backend": backend}
    if backend == "inductor":
        options["mode"] = mode
    for _, module in parts:
        module.compile(**options)
    kinds = sorted({type(m).__name__ for _, m in parts})
    logging.info(f"torch.compile ({backend}, mode {mode}): {len(parts)} modules ({', '.join(kinds)})")
    return len(parts)


def pad_time_to_multiple(
    batch: Dict[str, torch.Tensor], frames: int, samples_per_frame: int
) -> Dict[str, torch.Tensor]:
    """The batch with ``video`` (B, T, H, W) padded with zeros to a multiple of ``frames``
    frames and ``speech`` (B, S) to the same duration in samples; lengths unchanged."""
    if frames <= 0:
        return batch
    padded = dict(batch)
    target = None
    if "video" in batch:
        target = _round_up(batch["video"].size(1), frames)
    if "speech" in batch:
        audio_frames = -(-batch["speech"].size(1) // samples_per_frame)
        target = max(target or 0, _round_up(audio_frames, frames))
    if "video" in batch:
        padded["video"] = _pad_dim1(batch["video"], target)
    if "speech" in batch:
        padded["speech"] = _pad_dim1(batch["speech"], target * samples_per_frame)
    return padded


class TimeBucketedCollate:
    """A collate function whose batches have their time axis padded by
    :func:`pad_time_to_multiple` (picklable, for data-loader workers)."""

    def __init__(self, collate: Callable, frames: int, samples_per_frame: int):
        self.collate = collate
        self.frames = frames
        self.samples_per_frame = samples_per_frame

    def __call__(self, data: Collection) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        ids, batch = self.collate(data)
        return ids, pad_time_to_multiple(batch, self.frames, self.samples_per_frame)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.collate!r}, frames={self.frames})"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad_dim1(x: torch.Tensor, size: int) -> torch.Tensor:
    extra = size - x.size(1)
    if extra <= 0:
        return x
    return torch.cat([x, x.new_zeros((x.size(0), extra, *x.shape[2:]))], dim=1)
