"""Where the files of a trained USR 2.0 model are, whatever form the model comes in.

Three forms are accepted, as a user meets them:

* an imported release (``usr2_import --out_dir DIR``): ``DIR/{config.yaml, model.pth,
  tokens.txt, bpe.model}``;
* a recipe experiment directory ``exp/<tag>``: ``config.yaml`` and the model file the
  training config selects (:func:`espnet_usr2.utils.model_selection.find_model_file`:
  ``valid.acc_av.ave.pth`` for the paper configs, ``valid.loss.best.pth`` for the small ones);
* a zip packed by stage 14 (``pyscripts/pack_model.py``), unpacked with ESPnet's
  :func:`espnet2.main_funcs.pack_funcs.unpack` (which also points the config's paths at
  the unpacked files) into a directory beside the zip, reused on the next call.

A training config written in a recipe names its SentencePiece model relative to the recipe
directory (``data/token_list/.../bpe.model``); :func:`resolved_train_config` finds such
files relative to the model directory and its parents, so a model decodes from any working
directory.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import yaml

from espnet_usr2.utils.model_selection import find_model_file

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
TRAIN_CONFIG_NAME = "config.yaml"
#: decoding configs looked for in a model directory (the recipe's names: decode_beam40.yaml ...)
DECODE_CONFIG_PATTERNS = ("decode*.yaml", "conf/decode*.yaml")
#: how many parent directories of the config are searched for a relative side file
#: (exp/<tag>/config.yaml -> the recipe directory is two levels up)
SIDE_FILE_PARENTS = 3


class ModelDirError(ValueError):
    """The given model directory / archive is not one of the accepted forms, or lacks a file."""


@dataclass
class ModelFiles:
    """The files of one model."""

    train_config: Path
    model_file: Path
    root: Path  # the model directory (or the unpacked archive)
    decode_config: Optional[Path] = None  # a decoding config shipped with the model, if any


def resolve_model_dir(
    model_dir: PathLike, model_file: Optional[PathLike] = None, unpack_dir: Optional[PathLike] = None
) -> ModelFiles:
    """The training config, model file and decoding config of ``model_dir``.

    Args:
        model_dir: an imported release, an experiment directory or a packed ``.zip``.
        model_file: overrides the model the directory selects: a path, or a file name
            inside the directory.
        unpack_dir: where a zip is unpacked (default: beside it, ``<zip without .zip>``).
    Raises:
        ModelDirError: the path is none of the accepted forms.
        FileNotFoundError: the selected model file is missing (the message lists the
            ``.pth`` files that exist).
    """
    path = Path(model_dir)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ModelDirError(
                f"{path} is a file but not a zip archive; --model_dir takes a directory "
                "(an imported release or exp/<tag>) or a model packed by stage 14 (.zip)"
            )
        files = unpack_model_zip(path, unpack_dir)
        root = Path(unpack_dir) if unpack_dir is not None else default_unpack_dir(path)
        config = Path(files["train_config"])
        model = _override_model(model_file, config.parent) or Path(files["model_file"])
    elif path.is_dir():
        root = path
        config = path / TRAIN_CONFIG_NAME
        if not config.is_file():
            raise ModelDirError(
                f"{path} has no {TRAIN_CONFIG_NAME}: expected a model imported with usr2_import, an experiment "
                "directory exp/<tag> of a recipe, or a packed model (.zip)"
            )
        model = _override_model(model_file, path) or find_model_file(path, config)
    else:
        raise ModelDirError(f"model directory {path} does not exist")
    if not model.is_file():
        raise FileNotFoundError(f"model file {model} does not exist")
    return ModelFiles(config, model, root, find_decode_config([config.parent, root]))


def _override_model(model_file: Optional[PathLike], model_dir: Path) -> Optional[Path]:
    """``--model_file``: an existing path as given, else a file name inside ``model_dir``."""
    if model_file is None:
        return None
    if Path(model_file).is_file():
        return Path(model_file)
    return find_model_file(model_dir, name=str(model_file))


def default_unpack_dir(archive: PathLike) -> Path:
    """``exp/packed/model.zip`` -> ``exp/packed/model``."""
    archive = Path(archive)
    return archive.with_name(archive.stem)


def unpack_model_zip(archive: PathLike, out_dir: Optional[PathLike] = None) -> Dict[str, str]:
    """Unpack a stage-14 zip with ESPnet's ``unpack``; returns ``{train_config, model_file}``.

    ESPnet reuses an earlier unpacking of the same archive when all its files are there.
    """
    from espnet2.main_funcs.pack_funcs import unpack

    archive = Path(archive)
    # absolute: ESPnet writes the unpacked paths into the config, which must work from anywhere
    out_dir = (Path(out_dir) if out_dir is not None else default_unpack_dir(archive)).resolve()
    with zipfile.ZipFile(archive) as z:
        meta_names = [n for n in z.namelist() if Path(n).name == "meta.yaml"]
        meta = yaml.safe_load(z.read(meta_names[0])) if meta_names else None
    if (
        not isinstance(meta, dict)
        or not {"train_config"} <= set(meta.get("yaml_files") or {})
        or not {"model_file"} <= set(meta.get("files") or {})
    ):
        raise ModelDirError(
            f"{archive} is not a packed USR 2.0 model: its meta.yaml must list yaml_files: "
            "{train_config} and files: {model_file} (pack it with stage 14 of usr2.sh)"
        )
    log.info("unpacking %s into %s", archive, out_dir)
    return unpack(archive, out_dir)


def find_decode_config(dirs: Sequence[Path]) -> Optional[Path]:
    """The one decoding config (``decode*.yaml``, ``conf/decode*.yaml``) shipped with a model.

    None when there is none, or when there are several (a warning names them: the caller
    picks one with ``--inference_config``).
    """
    found: List[Path] = []
    for d in dict.fromkeys(Path(x).resolve() for x in dirs):
        for pattern in DECODE_CONFIG_PATTERNS:
            found += [p for p in sorted(d.glob(pattern)) if p.is_file() and p not in found]
    if len(found) > 1:
        log.warning(
            "several decoding configs in the model directory (%s): using the built-in default; "
            "choose one with --inference_config",
            ", ".join(map(str, found)),
        )
        return None
    return found[0] if found else None


def locate_side_file(value: str, config_dir: Path) -> Optional[Path]:
    """A file a training config names (bpe.model, tokens.txt), wherever the model lives.

    Tried in order: as written (relative to the working directory), relative to the
    config's directory and its parents (a recipe names files from the recipe root), and
    the bare file name beside the config (an imported release).
    """
    given = Path(value)
    candidates = [given]
    if not given.is_absolute():
        candidates += [base / given for base in [config_dir, *list(config_dir.resolve().parents)[:SIDE_FILE_PARENTS]]]
    candidates.append(config_dir / given.name)
    return next((c for c in candidates if c.is_file()), None)


@contextlib.contextmanager
def resolved_train_config(train_config: PathLike) -> Iterator[Tuple[Path, Optional[str]]]:
    """``(config path, bpemodel)`` with the config's token list and bpemodel findable.

    When a path in the config does not resolve from here, a corrected copy is written to
    a temporary directory for the time of the ``with`` block (model building reads it).
    A missing token list file is an error; a missing SentencePiece model only a warning
    (text is then the tokens joined, which is what SentencePiece decoding gives).
    """
    train_config = Path(train_config)
    with open(train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ModelDirError(f"training config {train_config} is not a YAML mapping")
    changed = False
    token_list = config.get("token_list")
    if isinstance(token_list, str) and not Path(token_list).is_file():
        found = locate_side_file(token_list, train_config.parent)
        if found is None:
            raise ModelDirError(
                f"token_list {token_list} (from {train_config}) not found here, beside the "
                "config or in its parent directories"
            )
        config["token_list"], changed = str(found.resolve()), True
    bpemodel = config.get("bpemodel")
    if isinstance(bpemodel, str) and not Path(bpemodel).is_file():
        found = locate_side_file(bpemodel, train_config.parent)
        if found is None:
            log.warning("bpemodel %s (from %s) not found: text is the tokens joined", bpemodel, train_config)
        config["bpemodel"], changed = (str(found.resolve()) if found else None), True
    if not changed:
        yield train_config, bpemodel
        return
    with tempfile.TemporaryDirectory(prefix="usr2_config_") as tmp:
        fixed = Path(tmp) / TRAIN_CONFIG_NAME
        fixed.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        yield fixed, config["bpemodel"]
