"""Import a released USR 2.0 / USR checkpoint as an ESPnet model directory of this task.

Full model (a fine-tuned USR 2.0 release) -> ``out_dir``::

    model.pth            the state dict under this project's names (loads strictly)
    config.yaml          a complete USR2Task training config, as ESPnet's trainer writes it
    tokens.txt           <blank>, the released units, <sos/eos> (1049 entries for the release)
    bpe.model            a SentencePiece model of the units (espnet_usr2.data.unit_tokenizer)
    decode_beam40.yaml   the release's decoding (beam 40, CTC weight 0.1, maxlenratio 1.0)
    unlabelled_heads.pth USR's heads for the unlabelled losses (``out_layer_unlabelled_*``), when
                         the file has them, under this project's names
                         (``unlabelled_objective.*``): semi-supervised fine-tuning of the release
                         starts from them with ``--init_param model.pth unlabelled_heads.pth``

so that ``usr2_inference --train_config out_dir/config.yaml --model_file out_dir/model.pth``
decodes and ``usr2_train --init_param out_dir/model.pth`` fine-tunes.

Encoder only (a USR self-supervised release) -> ``out_dir/encoder.pth``: frontends,
projections and encoder blocks (no final norm) under this project's names, for a plain
``--init_param out_dir/encoder.pth`` (ESPnet loads the listed tensors and keeps the rest;
the EMA teacher copies the student at its first step, so it starts from them too); with
``units`` also ``tokens.txt`` and ``bpe.model``, to train in the released vocabulary.

A checkpoint of this project itself -- the output of self-supervised pre-training
(``model: usr2_pretrain``) -- already has this project's names: ``--encoder_only`` takes its
frontends, projections and encoder blocks as they are (the student, or with ``source:
target_backbone`` its EMA teacher ``teacher.model.*``), checked against ``config`` (needed).

The training config is the paper config of the detected size
(``egs2/TEMPLATE/usr2/conf/train_usr2_<size>.yaml``) or ``config``, with the architecture
taken from the checkpoint's shapes. Everything is checked against the model that config
builds (names and shapes) before anything is written; the files appear in ``out_dir`` by
one rename at the end, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

from espnet_usr2.data.unit_tokenizer import (
    read_units,
    release_token_list,
    write_sentencepiece_model,
    write_token_list,
)
from espnet_usr2.model.release_checkpoint import (
    OWN_UNLABELLED_HEADS,
    STUDENT,
    TEACHER,
    ReleaseArchitecture,
    ReleaseCheckpointError,
    check_against_model,
    count_parameters,
    detect_architecture,
    load_checkpoint_file,
    rename_network,
    rename_unlabelled_heads,
    split_release_state,
)
from espnet_usr2.tasks.usr2 import USR2Task

log = logging.getLogger(__name__)
PathLike = Union[str, Path]

TEMPLATE_CONF_DIR = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2" / "conf"
RELEASE_DECODE_CONFIG = "decode_beam40.yaml"
MODEL_FILE, CONFIG_FILE, TOKENS_FILE, BPE_FILE, ENCODER_FILE = (
    "model.pth",
    "config.yaml",
    "tokens.txt",
    "bpe.model",
    "encoder.pth",
)
UNLABELLED_HEADS_FILE = "unlabelled_heads.pth"
#: the parts of this project's model an encoder-only file must fill completely
ENCODER_INIT_PARTS = ("audio_frontend.", "video_frontend.", "fusion.", "encoder.blocks.")
#: where a checkpoint of this project keeps its EMA teacher's copy of the network
OWN_TEACHER_PREFIX = "teacher.model."
OWN_CHECKPOINT_NOTE = "not part of the encoder init (this project's checkpoint)"


@dataclass
class ImportReport:
    """What was read, detected and written (printed by ``usr2_import``)."""

    checkpoint: Path
    out_dir: Path
    prefix: str
    n_tensors: int
    ignored: Dict[str, int]
    architecture: Optional[ReleaseArchitecture]  # None: a checkpoint of this project (names kept)
    n_parameters: int
    config: Path
    encoder_only: bool = False
    unlabelled_heads: int = 0  # USR's unlabelled-loss head tensors written to unlabelled_heads.pth
    files: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        lines = [
            f"read {self.checkpoint}: {self.n_tensors} network tensors"
            + (f" under '{self.prefix}'" if self.prefix else "")
        ]
        for what, n in sorted(self.ignored.items()):
            lines.append(f"  ignored {n} x {what}")
        if self.unlabelled_heads:
            lines.append(
                f"  kept {self.unlabelled_heads} x out_layer_unlabelled_* (USR's heads for the unlabelled "
                f"losses) in {UNLABELLED_HEADS_FILE}: semi-supervised fine-tuning starts from them with "
                f"--init_param {MODEL_FILE} {UNLABELLED_HEADS_FILE}"
            )
        found = self.architecture.describe() if self.architecture else "this project's parameter names"
        lines.append(f"detected {found}; {self.n_parameters / 1e6:.1f} M parameters")
        lines.append(
            f"checked against the model of {self.config}"
            if self.encoder_only
            else f"training config: {self.config} (architecture from the checkpoint)"
        )
        lines.append(f"wrote {self.out_dir}: {' '.join(self.files)}")
        return lines


class ReleaseImportError(ReleaseCheckpointError):
    """The import cannot be done as asked (missing units, output exists, no config)."""


def import_release(
    checkpoint: PathLike,
    out_dir: PathLike,
    units: Optional[PathLike] = None,
    encoder_only: bool = False,
    config: Optional[PathLike] = None,
    source: str = STUDENT,
    overwrite: bool = False,
) -> ImportReport:
    """Convert ``checkpoint`` into ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    if not encoder_only and units is None:
        raise ReleaseImportError("a full model needs --units (the release's unigram1000_units.txt)")
    state = load_checkpoint_file(checkpoint)
    own = own_encoder_state(state, source) if encoder_only else None
    if own is not None:  # e.g. self-supervised pre-training of this project: the names are already ours
        if config is None:
            raise ReleaseImportError(
                f"{checkpoint} is a checkpoint of this project: give --config, the training "
                "config whose model the encoder is for"
            )
        converted, origin, arch = own, {k: k for k in own}, None
        heads = heads_origin = {}
        n_tensors, prefix, ignored = len(state), "", {OWN_CHECKPOINT_NOTE: len(state) - len(own)}
    else:
        release = split_release_state(state, encoder_only=encoder_only, source=source)
        arch = detect_architecture(release.network, encoder_only=encoder_only)
        converted, origin = rename_network(release.network, encoder_only=encoder_only)
        n_tensors, prefix, ignored = len(release.network), release.prefix, release.ignored
        heads, heads_origin = rename_unlabelled_heads(release.unlabelled_heads)
    config = Path(config) if config is not None else default_config(arch)
    tokens = _token_list(units, arch) if units is not None else None
    # encoder only: the file must fit the training config as it is (it is checked, not adapted)
    args = training_args(
        config,
        None if encoder_only else arch,
        tokens or _placeholder_tokens(),
        bpemodel=None if encoder_only else out_dir.resolve() / BPE_FILE,
    )
    with torch.device("meta"):  # names and shapes only, no memory
        expected = USR2Task.build_model(args).state_dict()
    check_against_model(
        converted, origin, expected, ENCODER_INIT_PARTS if encoder_only else None, what=f"the model of {config}"
    )
    if heads:  # optional: a release file may hold the network alone
        check_against_model(
            heads,
            heads_origin,
            expected_unlabelled_heads(args),
            required_prefixes=(),
            what=f"the unlabelled heads of {config} with --semi usr2",
        )
    report = ImportReport(
        checkpoint=Path(checkpoint),
        out_dir=out_dir,
        prefix=prefix,
        n_tensors=n_tensors,
        ignored=ignored,
        architecture=arch,
        n_parameters=count_parameters(converted),
        config=config,
        encoder_only=encoder_only,
        unlabelled_heads=len(heads),
    )
    with _staging(out_dir, overwrite) as stage:
        if tokens is not None:  # the released vocabulary, also for training from an encoder
            write_token_list(tokens, stage / TOKENS_FILE)
            write_sentencepiece_model(tokens[1:-1], stage / BPE_FILE)
        if encoder_only:
            torch.save(converted, stage / ENCODER_FILE)
        else:
            torch.save(converted, stage / MODEL_FILE)
            if heads:
                torch.save(heads, stage / UNLABELLED_HEADS_FILE)
            write_config(args, stage / CONFIG_FILE)
            decode = TEMPLATE_CONF_DIR / RELEASE_DECODE_CONFIG
            if decode.is_file():
                shutil.copyfile(decode, stage / RELEASE_DECODE_CONFIG)
        report.files = sorted(p.name for p in stage.iterdir())
    return report


def expected_unlabelled_heads(args: argparse.Namespace) -> Dict[str, torch.Tensor]:
    """Names and shapes of the unlabelled heads that semi-supervised training of ``args`` builds."""
    semi_args = argparse.Namespace(**vars(args))
    semi_args.semi, semi_args.semi_conf = "usr2", {**(args.semi_conf or {}), "unlabelled_heads": True}
    with torch.device("meta"):
        state = USR2Task.build_model(semi_args).state_dict()
    return {k: v for k, v in state.items() if k.startswith(OWN_UNLABELLED_HEADS)}


def own_encoder_state(state: Dict[str, torch.Tensor], source: str = STUDENT) -> Optional[Dict[str, torch.Tensor]]:
    """The encoder-init tensors of a checkpoint in this project's names (None: not one).

    ``source``: the student (``backbone``) or the EMA teacher (``target_backbone``, kept
    under ``teacher.model.``); the final encoder norm is left out, as for a release.
    """
    if not any(k.startswith("encoder.blocks.") for k in state):
        return None
    prefix = OWN_TEACHER_PREFIX if source == TEACHER else ""
    picked = {
        k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith(prefix) and k[len(prefix) :].startswith(ENCODER_INIT_PARTS)
    }
    if not picked:
        raise ReleaseImportError(f"the checkpoint holds no EMA teacher ({OWN_TEACHER_PREFIX}*) to import")
    return picked


# ============================================================================ config


def default_config(arch: ReleaseArchitecture) -> Path:
    """The paper config of the detected size; an error naming the shapes when there is none."""
    if arch.size is None:
        raise ReleaseImportError(
            f"the checkpoint's shapes match no released size ({arch.describe()}): give "
            "--config with the training options to use"
        )
    path = TEMPLATE_CONF_DIR / f"train_usr2_{arch.size.key}.yaml"
    if not path.is_file():
        raise ReleaseImportError(
            f"the paper config {path} is not there (package installed without egs2/?): give --config"
        )
    return path


def training_args(
    config: PathLike, arch: Optional[ReleaseArchitecture], tokens: Sequence[str], bpemodel: Optional[Path]
) -> argparse.Namespace:
    """USR2Task's arguments for ``config``, with the architecture the checkpoint has (``arch``).

    Only what the shapes fix (and the release's fixed choices: ResNet-18 frontends with
    Swish, the raw waveform, per-modality heads) is overridden; dropout, drop path,
    augmentation and optimisation stay the config's. ``arch=None``: the config as it is.
    """
    extra = ["--token_type", "bpe"] + (["--bpemodel", str(bpemodel)] if bpemodel is not None else [])
    args = USR2Task.get_parser().parse_args(["--config", str(config), "--token_list", "__in_memory__", *extra])
    args.token_list = list(tokens)
    if arch is None:
        return args
    args.audio_frontend, args.video_frontend, args.fusion = "resnet1d", "resnet3d", "concat"
    args.encoder, args.decoder, args.model = "relpos_transformer", "transformer", "usr2"
    args.audio_frontend_conf = {
        **_conf(args.audio_frontend_conf),
        **dict(
            channels=list(arch.audio_channels),
            stem_kernel=arch.audio_stem_kernel,
            stem_stride=4,
            pool_size=20,
            activation="swish",
            normalize_waveform=False,
        ),
    }
    args.video_frontend_conf = {
        **_conf(args.video_frontend_conf),
        **dict(channels=list(arch.video_channels), activation="swish", pixel_mean=0.421, pixel_std=0.165),
    }
    encoder_conf = _conf(args.encoder_conf)
    args.encoder_conf = {
        **encoder_conf,
        **dict(
            output_size=arch.adim,
            attention_heads=arch.aheads,
            linear_units=arch.eunits,
            num_blocks=arch.elayers,
            layer_scale_init=encoder_conf.get("layer_scale_init") or 0.1,
            activation="relu",
        ),
    }
    if arch.dlayers:
        args.decoder_conf = {
            **_conf(args.decoder_conf),
            **dict(
                attention_heads=arch.aheads, linear_units=arch.dunits, num_blocks=arch.dlayers, per_modality_output=True
            ),
        }
    args.model_conf = {**_conf(args.model_conf), "per_modality_ctc": True}
    args.init_param = []
    return args


def write_config(args: argparse.Namespace, path: Path) -> None:
    """config.yaml as ESPnet's trainer writes it (after the model is built: the token list inline).

    Only keys the parser knows are written (ESPnet adds run-time ones such as ``version``),
    so the file also works as ``usr2_train --config`` for fine-tuning.
    """
    known = {action.dest for action in USR2Task.get_parser()._actions}
    config = {k: v for k, v in vars(args).items() if k in known}
    with open(path, "w", encoding="utf-8") as f:
        yaml_no_alias_safe_dump(config, f, indent=4, sort_keys=False)


def _conf(value) -> dict:
    return dict(value or {})


def _token_list(units: PathLike, arch: ReleaseArchitecture) -> List[str]:
    tokens = release_token_list(read_units(units))
    if arch.vocab_size and len(tokens) != arch.vocab_size:  # 0: an encoder has no output layer
        raise ReleaseImportError(
            f"{units} gives {len(tokens)} tokens (<blank> + {len(tokens) - 2} units + "
            f"<sos/eos>) but the checkpoint's output layers have {arch.vocab_size}"
        )
    return tokens


def _placeholder_tokens() -> List[str]:
    """An encoder-only check builds a model too; its vocabulary does not matter."""
    return ["<blank>", "<unk>", "<sos/eos>"]


# ============================================================================ output


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ReleaseImportError(f"--out_dir {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ReleaseImportError(f"--out_dir {out_dir} is not empty (use --overwrite to replace it)")


class _staging:
    """A temporary directory beside ``out_dir`` that becomes ``out_dir`` on success."""

    def __init__(self, out_dir: Path, overwrite: bool):
        self.out_dir, self.overwrite = out_dir, overwrite

    def __enter__(self) -> Path:
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=self.out_dir.parent))
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return False
        os.chmod(self.stage, 0o777 & ~_umask())
        old = None
        if self.out_dir.exists():
            old = self.out_dir.with_name(self.stage.name + ".old")
            self.out_dir.rename(old)
        self.stage.rename(self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
