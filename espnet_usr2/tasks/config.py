"""Building a model from a training YAML without running the trainer."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import yaml

from espnet_usr2.model.espnet_model import ESPnetUSR2Model
from espnet_usr2.tasks.usr2 import USR2Task


def parse_training_args(
    config: Union[str, Path], token_list: Union[str, Path, Sequence[str]], extra: Optional[List[str]] = None
) -> argparse.Namespace:
    """Arguments USR2Task would see for ``--config config`` (+ ``extra`` command-line options)."""
    cmd = ["--config", str(config)]
    if isinstance(token_list, (str, Path)):
        cmd += ["--token_list", str(token_list)]
    else:
        cmd += ["--token_list", "__in_memory__"]
    args = USR2Task.get_parser().parse_args(cmd + list(extra or []))
    if not isinstance(token_list, (str, Path)):
        args.token_list = list(token_list)
    return args


def build_model_from_config(
    config: Union[str, Path],
    token_list: Union[str, Path, Sequence[str]],
    extra: Optional[List[str]] = None,
    meta: bool = False,
) -> ESPnetUSR2Model:
    """The model a training run with this config would start from.

    ``meta=True`` builds it on PyTorch's meta device: shapes and parameter counts without
    allocating memory (a 1 B-parameter model in a second).
    """
    args = parse_training_args(config, token_list, extra)
    with torch.device("meta") if meta else nullcontext():
        return USR2Task.build_model(args)


def write_untrained_model_dir(
    out: Union[str, Path], config: Union[str, Path], tokens: Sequence[str], token_type: str, seed: int = 0
) -> Path:
    """A model directory as training leaves it (``config.yaml`` + ``model.pth``) for ``config``
    with random weights (``seed``) and ``tokens``: what ``--model_dir`` and ``usr2_transcribe``
    read. For timing a model size before any is trained (bench/bench_transcribe_base.py) and
    for tests of the decoding entry points."""
    out = Path(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    args = parse_training_args(config, list(tokens), ["--token_type", token_type])
    (out / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    torch.save(USR2Task.build_model(args).state_dict(), out / "model.pth")
    return out
