"""Which model file of an experiment directory to decode, hand on or pack.

ESPnet's trainer (``espnet2/train/trainer.py``, ``espnet2/main_funcs/average_nbest_models.py``)
names the model files of a run after the training config's ``best_model_criterion``
entries ``(phase, criterion, mode)`` and its ``keep_nbest_models``:

* ``<n>epoch.pth`` for the kept epochs, ``latest.pth`` -> the last one;
* ``<phase>.<criterion>.best.pth`` -> the best epoch, updated after every epoch;
* at the end of training, ``<phase>.<criterion>.ave_<n>best.pth`` (the average of the
  n best epochs, a link to the epoch itself for n = 1) for each n in ``keep_nbest_models``
  that the run has epochs for, and ``<phase>.<criterion>.ave.pth`` -> the largest of them.

A criterion the run never reported (e.g. ``valid.acc_av`` of a model that does not log
``acc_av``) gets no file at all. The paper configs select by ``valid acc_av max`` and
average 5 models, so their model is ``valid.acc_av.ave.pth``; the small configs select by
``valid loss min`` and keep one, so theirs is ``valid.loss.best.pth``. Deriving the name
from the run's own config (``<exp>/config.yaml``, which also holds command-line overrides)
is what keeps ``usr2.sh``'s hand-overs (warm-up -> semi-supervised run -> decoding ->
packing) working for every config.

A model directory written by ``usr2_import`` (a released model) holds ``model.pth``.

Command line (used by ``usr2.sh``)::

    python -m espnet_usr2.bin.usr2_model_selection --train_config exp/x/config.yaml
    valid.acc_av.ave.pth
    python -m espnet_usr2.bin.usr2_model_selection --exp_dir exp/x
    exp/x/valid.acc_av.ave.pth
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import yaml

# ESPnet's defaults (espnet2/tasks/abs_task.py) for a config without these keys; a test
# compares them with ESPnet's parser, so an ESPnet upgrade that changes them is noticed.
ESPNET_DEFAULT_BEST_MODEL_CRITERION: List[Tuple[str, str, str]] = [
    ("train", "loss", "min"),
    ("valid", "loss", "min"),
    ("train", "acc", "max"),
    ("valid", "acc", "max"),
]
ESPNET_DEFAULT_KEEP_NBEST_MODELS: List[int] = [10]

# The model file name of a directory written by usr2_import (a converted released model).
IMPORTED_MODEL_NAME = "model.pth"

ConfigLike = Union[Mapping, str, Path]


def _load_config(train_config: ConfigLike) -> Mapping:
    """The training config as a mapping (a YAML path is read)."""
    if isinstance(train_config, Mapping):
        return train_config
    path = Path(train_config)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} does not exist")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ValueError(f"training config {path} is not a YAML mapping (got {type(config).__name__})")
    return config


def _parse_criterion(entry, where: str) -> Tuple[str, str, str]:
    """One (phase, criterion, mode) entry: a 3-item list (YAML) or "phase,criterion,mode"."""
    if isinstance(entry, str):
        entry = [part.strip() for part in entry.split(",")]
    if not isinstance(entry, Sequence) or len(entry) != 3 or not all(isinstance(e, str) for e in entry):
        raise ValueError(f"best_model_criterion entry {entry!r} in {where} is not [phase, criterion, mode]")
    phase, criterion, mode = entry
    if mode not in ("min", "max"):
        raise ValueError(f"best_model_criterion entry {list(entry)} in {where}: mode must be min or max")
    return phase, criterion, mode


def selection_of(train_config: ConfigLike) -> Tuple[Tuple[str, str, str], List[int]]:
    """The first ``best_model_criterion`` entry and ``keep_nbest_models`` of a config,
    with ESPnet's defaults for absent keys."""
    config = _load_config(train_config)
    where = "the config" if isinstance(train_config, Mapping) else str(train_config)
    criteria = config.get("best_model_criterion")
    if criteria is None:
        criteria = ESPNET_DEFAULT_BEST_MODEL_CRITERION
    if isinstance(criteria, str) or not isinstance(criteria, Sequence) or len(criteria) == 0:
        raise ValueError(
            f"best_model_criterion in {where} must be a non-empty list of [phase, criterion, mode], got {criteria!r}"
        )
    first = _parse_criterion(criteria[0], where)
    nbest = config.get("keep_nbest_models")
    if nbest is None:
        nbest = ESPNET_DEFAULT_KEEP_NBEST_MODELS
    if isinstance(nbest, int):
        nbest = [nbest]
    if not isinstance(nbest, Sequence) or not all(isinstance(n, int) and not isinstance(n, bool) for n in nbest):
        raise ValueError(f"keep_nbest_models in {where} must be an integer or a list of integers, got {nbest!r}")
    return first, list(nbest)


def default_inference_model(train_config: ConfigLike) -> str:
    """The model file name ESPnet's trainer writes for the config's first
    ``best_model_criterion``: ``<phase>.<criterion>.ave.pth`` when the run averages
    several models (``keep_nbest_models`` > 1), else ``<phase>.<criterion>.best.pth``
    (with one kept model the "average" is that same best epoch, and for 0 ESPnet's
    ``ave.pth`` link points at no file).

    >>> default_inference_model({"best_model_criterion": [["valid", "acc_av", "max"]], "keep_nbest_models": 5})
    'valid.acc_av.ave.pth'
    >>> default_inference_model({"best_model_criterion": [["valid", "loss", "min"]], "keep_nbest_models": 1})
    'valid.loss.best.pth'
    """
    (phase, criterion, _), nbest = selection_of(train_config)
    kind = "ave" if nbest and max(nbest) > 1 else "best"
    return f"{phase}.{criterion}.{kind}.pth"


def find_model_file(
    exp_dir: Union[str, Path], train_config: Optional[ConfigLike] = None, name: Optional[str] = None
) -> Path:
    """The model file of an experiment (or model) directory.

    Args:
        exp_dir: the directory (``exp/<tag>``, an unpacked model, or a ``usr2_import`` output).
        train_config: the config that selects the model (default: ``exp_dir/config.yaml``).
        name: a file name inside ``exp_dir`` chosen by the user; overrides the selection.

    Without ``name``: the file :func:`default_inference_model` names, or ``model.pth`` (the
    layout ``usr2_import`` writes) when that file is absent and ``model.pth`` exists.

    Raises:
        FileNotFoundError: the file is missing; the message names it and lists the
            ``.pth`` files that do exist in ``exp_dir``.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"model directory {exp_dir} does not exist")
    if name is not None:
        wanted = name
        why = "given"
    else:
        if train_config is None:
            train_config = exp_dir / "config.yaml"
        wanted = default_inference_model(train_config)
        source = "the config" if isinstance(train_config, Mapping) else str(train_config)
        why = f"selected by {source} (best_model_criterion / keep_nbest_models)"
        if not _exists(exp_dir / wanted) and _exists(exp_dir / IMPORTED_MODEL_NAME):
            wanted = IMPORTED_MODEL_NAME
    path = exp_dir / wanted
    if _exists(path):
        return path
    present = sorted(p.name for p in exp_dir.glob("*.pth") if _exists(p))
    dangling = sorted(p.name for p in exp_dir.glob("*.pth") if p.is_symlink() and not _exists(p))
    msg = f"model file {path} ({why}) does not exist; .pth files in {exp_dir}: " + (", ".join(present) or "none")
    if dangling:
        msg += f" (links to missing files: {', '.join(dangling)})"
    if name is None:
        msg += "; pick one with --inference_model (usr2.sh) or name= / --name"
    raise FileNotFoundError(msg)


def _exists(path: Path) -> bool:
    """A file, or a link that leads to one (ESPnet's best/ave names are links)."""
    return path.is_file()
