"""The released USR 2.0 / USR checkpoints: file forms, parameter names, model sizes.

Facts read from the official code (``ahaliassos/usr2``: ``E2E`` of
``espnet/nets/pytorch_backend/e2e_asr_transformer.py``, ``conf/model/backbone/*.yaml``,
``demo.py``; ``ahaliassos/usr``: the training wrappers and ``learner_ft.py``):

* the network is an ``E2E`` with ``encoder`` (``frontend_a`` 1-D ResNet-18,
  ``frontend_v`` 3-D stem + 2-D ResNet-18, ``linear_{v,a,av}`` projections, ``encoders.N``
  pre-LN relative-position blocks with LayerScale ``gamma_{mha,ff}``, ``after_norm``),
  ``ctc_{v,a,av}.ctc_lo`` and ``decoder`` (``embed.0``, ``decoders.N``, ``after_norm``,
  ``out_layer_{v,a,av}``) -- tensor for tensor this project's model under other names
  (:func:`our_name`);
* files hold that state dict under wrapper prefixes: ``_orig_mod.`` (``torch.compile``),
  ``model.`` (the Lightning module, the USR wrapper), ``backbone.`` (USR's student), or are
  Lightning training checkpoints with the state dict under ``state_dict``. USR's wrapper
  also holds its EMA teacher (``target_backbone.``), unused norms and self-supervised
  predictors: not part of the model, ignored and reported (:data:`IGNORED_WRAPPER_PARTS`);
  and the student's heads for the unlabelled losses (``out_layer_unlabelled_{v,a,av}``,
  ``out_layer_unlabelled_ctc_{v,a,av}``), kept apart (:attr:`ReleaseState.unlabelled_heads`)
  for semi-supervised fine-tuning (:func:`rename_unlabelled_heads`);
* the self-supervised checkpoints (``model._orig_mod.model.backbone.encoder.*``) are used
  encoder-only, without ``after_norm``, as USR's fine-tuning loads them;
* sizes (:data:`RELEASED_SIZES`): Base, Base+, Large, Huge, vocabulary 1049.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

PathLike = Union[str, Path]
Tensors = Dict[str, torch.Tensor]

#: path components put in front of the network's names by the training code
WRAPPER_COMPONENTS = ("_orig_mod", "model", "module")
#: the student network inside USR's wrapper, and its EMA teacher
STUDENT, TEACHER = "backbone", "target_backbone"
#: top-level names of the released network (``E2E``)
NETWORK_PARTS = ("encoder", "decoder", "ctc_v", "ctc_a", "ctc_av")
#: top-level names of the encoder (a self-supervised encoder saved without its prefix)
ENCODER_PARTS = ("frontend_a", "frontend_v", "linear_a", "linear_v", "linear_av", "encoders", "after_norm", "embed")
#: wrapper parts that are not the model: name prefix -> what it is (for the log)
IGNORED_WRAPPER_PARTS = {
    "target_backbone.": "USR's EMA teacher copy",
    "out_layer_unlabelled_": "USR's output heads for the unlabelled losses",
    "layer_norm.": "USR wrapper's unused layer norm",
    "instance_norm.": "USR wrapper's unused instance norm",
    "predictor": "self-supervised predictor",
}
#: the release's own encoder final norm, left out of an encoder-only init (as USR's fine-tuning does)
ENCODER_AFTER_NORM = "encoder.after_norm."
ENCODER_ONLY_NOTE = "not part of the encoder (--encoder_only)"


class ReleaseCheckpointError(ValueError):
    """The file is not a released checkpoint, or holds tensors this importer cannot place."""


# ============================================================================ sizes


@dataclass(frozen=True)
class ReleaseSize:
    """One released model size (``conf/model/backbone/resnet_transformer_*.yaml``)."""

    key: str  # this project's config name: train_usr2_<key>.yaml
    title: str
    adim: int
    aheads: int
    eunits: int
    elayers: int
    dlayers: int


RELEASED_SIZES = (
    ReleaseSize("base", "Base", 512, 8, 2048, 12, 6),
    ReleaseSize("base_plus", "Base+", 768, 12, 3072, 12, 6),
    ReleaseSize("large", "Large", 1024, 16, 4096, 24, 9),
    ReleaseSize("huge", "Huge", 1280, 16, 5120, 32, 9),
)
RELEASE_VOCAB_SIZE = 1049


@dataclass(frozen=True)
class ReleaseArchitecture:
    """Everything about the network that the tensor shapes tell.

    The decoder's head count is not visible in any shape; the release ties it to the
    encoder's (``dheads: ${model.backbone.aheads}``), and so does this importer.
    """

    idim: int
    adim: int
    aheads: int
    eunits: int
    elayers: int
    audio_channels: Tuple[int, ...]
    video_channels: Tuple[int, ...]
    audio_stem_kernel: int
    dlayers: int = 0  # 0: encoder only
    dunits: int = 0
    vocab_size: int = 0

    @property
    def size(self) -> Optional[ReleaseSize]:
        """The released size with these dimensions (encoder-only: the encoder's), or None."""
        for s in RELEASED_SIZES:
            if (s.adim, s.aheads, s.eunits, s.elayers) == (self.adim, self.aheads, self.eunits, self.elayers) and (
                self.dlayers == 0 or (s.dlayers == self.dlayers and self.dunits == s.eunits)
            ):
                return s
        return None

    def describe(self) -> str:
        name = self.size.title if self.size else "not a released size"
        text = f"{name}: d {self.adim}, {self.aheads} heads, FFN {self.eunits}, {self.elayers} encoder"
        if self.dlayers:
            return text + f" / {self.dlayers} decoder blocks (FFN {self.dunits}), vocabulary {self.vocab_size}"
        return text + " blocks, encoder only"


def detect_architecture(net: Mapping[str, torch.Tensor], encoder_only: bool = False) -> ReleaseArchitecture:
    """Read the architecture from the shapes of a network state dict (release names)."""

    def shape(key: str) -> Tuple[int, ...]:
        if key not in net:
            raise ReleaseCheckpointError(f"the checkpoint has no tensor {key!r}: not a USR / USR 2.0 network")
        return tuple(net[key].shape)

    adim, idim = shape("encoder.linear_v.weight")
    decoder = (
        {}
        if encoder_only
        else dict(
            dlayers=_count_blocks(net, "decoder.decoders."),
            dunits=shape("decoder.decoders.0.feed_forward.w_1.weight")[0],
            vocab_size=shape("decoder.embed.0.weight")[0],
        )
    )
    return ReleaseArchitecture(
        idim=idim,
        adim=adim,
        aheads=shape("encoder.encoders.0.self_attn.pos_bias_u")[0],
        eunits=shape("encoder.encoders.0.feed_forward.w_1.weight")[0],
        elayers=_count_blocks(net, "encoder.encoders."),
        audio_channels=_stage_channels(net, "encoder.frontend_a.trunk."),
        video_channels=_stage_channels(net, "encoder.frontend_v.trunk."),
        audio_stem_kernel=shape("encoder.frontend_a.trunk.conv1.weight")[-1],
        **decoder,
    )


def _count_blocks(net: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in net if k.startswith(prefix)}
    if not indices or indices != set(range(len(indices))):
        raise ReleaseCheckpointError(f"the checkpoint's blocks {prefix}N are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _stage_channels(net: Mapping[str, torch.Tensor], trunk: str) -> Tuple[int, ...]:
    """Output channels of the four ResNet stages (``layerK.0.conv1``)."""
    channels = []
    for stage in range(1, 5):
        key = f"{trunk}layer{stage}.0.conv1.weight"
        if key not in net:
            raise ReleaseCheckpointError(f"the checkpoint has no tensor {key!r}: not a USR / USR 2.0 frontend")
        channels.append(int(net[key].shape[0]))
    return tuple(channels)


# ============================================================================ files and prefixes


def load_checkpoint_file(path: PathLike) -> Tensors:
    """The flat ``{name: tensor}`` state of a ``.pth`` / ``.ckpt`` file.

    Accepts a state dict, or a training checkpoint holding one under ``state_dict`` (PyTorch
    Lightning) or ``model``. Files holding Python objects besides tensors (a Lightning
    checkpoint's hyper-parameters) need full unpickling, which runs code from the file:
    import only files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise ReleaseCheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as safe_error:  # noqa: BLE001 -- decide below whether it is a checkpoint at all
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # noqa: BLE001
            raise ReleaseCheckpointError(
                f"{path} is not a PyTorch checkpoint ({type(error).__name__}: {error})"
            ) from safe_error
    state = _state_dict_of(obj)
    if state is None:
        what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
        raise ReleaseCheckpointError(
            f"{path} holds {what}, not a state dict or a training checkpoint with 'state_dict'"
        )
    return state


def _state_dict_of(obj) -> Optional[Tensors]:
    if not isinstance(obj, dict) or not obj:
        return None
    if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return dict(obj)
    for key in ("state_dict", "model"):
        inner = obj.get(key)
        if isinstance(inner, dict):
            return _state_dict_of(inner)
    return None


@dataclass
class ReleaseState:
    """A checkpoint split into the network (release names), the student's unlabelled heads
    (release names; empty when importing the teacher or an encoder) and what is ignored."""

    network: Tensors
    prefix: str  # the wrapper prefix in front of the network's names (most common one)
    ignored: Dict[str, int]  # what was ignored -> how many tensors
    unlabelled_heads: Tensors = field(default_factory=dict)


def strip_wrappers(name: str) -> Tuple[str, str]:
    """``model._orig_mod.model.backbone.encoder.x`` -> (``model._orig_mod.model.``, ``backbone.encoder.x``)."""
    parts = name.split(".")
    i = 0
    while i < len(parts) - 1 and parts[i] in WRAPPER_COMPONENTS:
        i += 1
    return ".".join(parts[:i]) + ("." if i else ""), ".".join(parts[i:])


def split_release_state(
    state: Mapping[str, torch.Tensor], encoder_only: bool = False, source: str = STUDENT
) -> ReleaseState:
    """Pick the network (``source``: the student ``backbone`` or USR's ``target_backbone``).

    Raises :class:`ReleaseCheckpointError` listing every tensor that is neither part of the
    network nor a known wrapper part.
    """
    if source not in (STUDENT, TEACHER):
        raise ValueError(f"source must be {STUDENT!r} or {TEACHER!r}, got {source!r}")
    network: Tensors = {}
    prefixes: Counter = Counter()
    ignored: Counter = Counter()
    heads: Tensors = {}
    unknown: List[str] = []
    for name, tensor in state.items():
        wrapper, rest = strip_wrappers(name)
        head = rest.split(".", 1)[0]
        if head in (STUDENT, TEACHER) and "." in rest:
            if head != source:
                ignored[_ignored_label(rest) or f"{STUDENT}.* (the student: --source {STUDENT})"] += 1
                continue
            wrapper, rest = wrapper + head + ".", rest.split(".", 1)[1]
            head = rest.split(".", 1)[0]
        if head in NETWORK_PARTS or head in ENCODER_PARTS:
            network[rest] = tensor
            prefixes[wrapper] += 1
        elif UNLABELLED_HEAD.fullmatch(rest) and source == STUDENT and not encoder_only:
            heads[rest] = tensor
        elif _ignored_label(rest) is not None:
            ignored[_ignored_label(rest)] += 1
        else:
            unknown.append(name)
    if unknown:
        raise ReleaseCheckpointError(
            f"{len(unknown)} tensor(s) are neither part of a USR / USR 2.0 network nor a "
            f"known part of its training wrapper: {_listing(unknown)}"
        )
    if source == TEACHER and not any(w.endswith(f"{TEACHER}.") for w in prefixes):
        raise ReleaseCheckpointError(f"the checkpoint holds no EMA teacher ({TEACHER}.*) to import")
    if not network:
        raise ReleaseCheckpointError(f"no network tensors found; ignored: {dict(ignored) or 'nothing'}")
    network = _as_network_names(network, encoder_only)
    if encoder_only:
        network, outside = _encoder_part(network)
        if outside:
            ignored[ENCODER_ONLY_NOTE] += outside
    return ReleaseState(
        network=network, prefix=prefixes.most_common(1)[0][0], ignored=dict(ignored), unlabelled_heads=heads
    )


def _ignored_label(name: str) -> Optional[str]:
    for prefix, what in IGNORED_WRAPPER_PARTS.items():
        if name.startswith(prefix):
            return f"{prefix}* ({what})"
    return None


def _as_network_names(network: Tensors, encoder_only: bool) -> Tensors:
    """A self-supervised encoder saved without its ``encoder.`` prefix gets it back."""
    heads = {k.split(".", 1)[0] for k in network}
    if heads & set(NETWORK_PARTS):
        stray = sorted(k for k in network if k.split(".", 1)[0] not in NETWORK_PARTS)
        if stray:
            raise ReleaseCheckpointError(
                f"tensors outside the network's parts {list(NETWORK_PARTS)}: {_listing(stray)}"
            )
        return network
    if not encoder_only:
        raise ReleaseCheckpointError(
            "the checkpoint holds an encoder only (no decoder or CTC heads): convert it with --encoder_only"
        )
    return {f"encoder.{k}": v for k, v in network.items()}


def _encoder_part(network: Tensors) -> Tuple[Tensors, int]:
    encoder = {k: v for k, v in network.items() if k.startswith("encoder.")}
    return encoder, len(network) - len(encoder)


# ============================================================================ names


def _trunk_block(m: "re.Match") -> str:
    frontend = "audio_frontend" if m["mod"] == "a" else "video_frontend"
    block = int(m["block"])
    if block >= BLOCKS_PER_STAGE:
        raise KeyError(m.string)
    index = (int(m["stage"]) - 1) * BLOCKS_PER_STAGE + block
    return f"{frontend}.trunk.layers.{index}.{_TRUNK_PARTS[m['part']]}.{m['rest']}"


BLOCKS_PER_STAGE = 2  # ResNet-18
_TRUNK_PARTS = {
    "conv1": "conv1.0",
    "bn1": "conv1.1",
    "conv2": "conv2.0",
    "bn2": "conv2.1",
    "downsample.0": "shortcut.0",
    "downsample.1": "shortcut.1",
}
_BN = r"(?:weight|bias|running_mean|running_var|num_batches_tracked)"
_LINEAR = r"(?:weight|bias)"
_ATTN = r"(?:linear_q|linear_k|linear_v|linear_out)\.(?:weight|bias)"
#: (release name pattern, this project's name): every released tensor matches one rule
_RULES: Sequence[Tuple[str, Union[str, Callable]]] = (
    (r"encoder\.frontend_a\.trunk\.conv1\.(weight)", r"audio_frontend.stem.0.\1"),
    (rf"encoder\.frontend_a\.trunk\.bn1\.({_BN})", r"audio_frontend.stem.1.\1"),
    (r"encoder\.frontend_v\.frontend3D\.0\.(weight)", r"video_frontend.stem.0.\1"),
    (rf"encoder\.frontend_v\.frontend3D\.1\.({_BN})", r"video_frontend.stem.1.\1"),
    (
        r"encoder\.frontend_(?P<mod>[av])\.trunk\.layer(?P<stage>[1-4])\.(?P<block>\d+)\."
        r"(?P<part>conv1|conv2|downsample\.0)\.(?P<rest>weight)",
        _trunk_block,
    ),
    (
        rf"encoder\.frontend_(?P<mod>[av])\.trunk\.layer(?P<stage>[1-4])\.(?P<block>\d+)\."
        rf"(?P<part>bn1|bn2|downsample\.1)\.(?P<rest>{_BN})",
        _trunk_block,
    ),
    (rf"encoder\.linear_(v|a|av)\.({_LINEAR})", r"fusion.proj.\1.\2"),
    (
        rf"encoder\.encoders\.(\d+)\.self_attn\.({_ATTN}|linear_pos\.weight|pos_bias_u|pos_bias_v)",
        r"encoder.blocks.\1.attn.\2",
    ),
    (rf"encoder\.encoders\.(\d+)\.feed_forward\.(w_1|w_2)\.({_LINEAR})", r"encoder.blocks.\1.feed_forward.\2.\3"),
    (rf"encoder\.encoders\.(\d+)\.norm_mha\.({_LINEAR})", r"encoder.blocks.\1.norm_attn.\2"),
    (rf"encoder\.encoders\.(\d+)\.norm_ff\.({_LINEAR})", r"encoder.blocks.\1.norm_ff.\2"),
    (r"encoder\.encoders\.(\d+)\.gamma_mha", r"encoder.blocks.\1.scale_attn.gamma"),
    (r"encoder\.encoders\.(\d+)\.gamma_ff", r"encoder.blocks.\1.scale_ff.gamma"),
    (rf"encoder\.after_norm\.({_LINEAR})", r"encoder.after_norm.\1"),
    (rf"ctc_(v|a|av)\.ctc_lo\.({_LINEAR})", r"ctc.\1.ctc_lo.\2"),
    (r"decoder\.embed\.0\.weight", "decoder.embed.0.weight"),
    (
        rf"decoder\.decoders\.(\d+)\.((?:self_attn|src_attn)\.{_ATTN}|feed_forward\.(?:w_1|w_2)\.{_LINEAR}"
        rf"|norm[123]\.{_LINEAR})",
        r"decoder.decoders.\1.\2",
    ),
    (rf"decoder\.after_norm\.({_LINEAR})", r"decoder.after_norm.\1"),
    (rf"decoder\.out_layer_(v|a|av)\.({_LINEAR})", r"decoder.output_layers.\1.\2"),
)
_COMPILED = [(re.compile(pattern), target) for pattern, target in _RULES]


def our_name(release_name: str) -> str:
    """This project's name of a released tensor; KeyError when no rule places it."""
    for pattern, target in _COMPILED:
        m = pattern.fullmatch(release_name)
        if m:
            return target(m) if callable(target) else m.expand(target)
    raise KeyError(release_name)


def rename_network(network: Mapping[str, torch.Tensor], encoder_only: bool = False) -> Tuple[Tensors, Dict[str, str]]:
    """``({our name: tensor}, {our name: release name})``; encoder-only drops ``after_norm``.

    Raises :class:`ReleaseCheckpointError` listing every tensor no rule places.
    """
    converted: Tensors = {}
    origin: Dict[str, str] = {}
    unplaced = []
    for name, tensor in network.items():
        if encoder_only and name.startswith(ENCODER_AFTER_NORM):
            continue
        try:
            target = our_name(name)
        except KeyError:
            unplaced.append(name)
            continue
        converted[target] = tensor
        origin[target] = name
    if unplaced:
        raise ReleaseCheckpointError(
            f"{len(unplaced)} tensor(s) of the checkpoint have no place in this model: {_listing(unplaced)}"
        )
    return converted, origin


#: USR's heads for the unlabelled losses: decoder (``out_layer_unlabelled_<m>``) and CTC
#: (``out_layer_unlabelled_ctc_<m>``), held by the student's wrapper beside ``backbone``
UNLABELLED_HEAD = re.compile(r"out_layer_unlabelled_(ctc_)?(v|a|av)\.(weight|bias)")
#: where this project keeps them: the unlabelled objective (``semi_conf.unlabelled_heads``)
OWN_UNLABELLED_HEADS = "unlabelled_objective."


def rename_unlabelled_heads(heads: Mapping[str, torch.Tensor]) -> Tuple[Tensors, Dict[str, str]]:
    """``out_layer_unlabelled_ctc_av.weight`` -> ``unlabelled_objective.ctc_heads.av.weight``,
    ``out_layer_unlabelled_v.bias`` -> ``unlabelled_objective.dec_heads.v.bias``;
    ``({our name: tensor}, {our name: release name})``."""
    converted: Tensors = {}
    origin: Dict[str, str] = {}
    for name, tensor in heads.items():
        ctc, modality, param = UNLABELLED_HEAD.fullmatch(name).groups()
        target = f"{OWN_UNLABELLED_HEADS}{'ctc_heads' if ctc else 'dec_heads'}.{modality}.{param}"
        converted[target], origin[target] = tensor, name
    return converted, origin


def check_against_model(
    converted: Mapping[str, torch.Tensor],
    origin: Mapping[str, str],
    expected: Mapping[str, torch.Tensor],
    required_prefixes: Optional[Sequence[str]] = None,
    what: str = "the model",
) -> None:
    """Every converted tensor exists in ``expected`` with the same shape, and every tensor of
    ``expected`` (or of its ``required_prefixes`` parts) is provided."""
    extra = sorted(origin[k] for k in converted if k not in expected)
    if extra:
        raise ReleaseCheckpointError(f"{len(extra)} tensor(s) have no counterpart in {what}: {_listing(extra)}")
    for key, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ReleaseCheckpointError(
                f"tensor {origin[key]} (-> {key}) has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in {what}"
            )
    needed = [k for k in expected if required_prefixes is None or k.startswith(tuple(required_prefixes))]
    missing = [k for k in needed if k not in converted]
    if missing:
        raise ReleaseCheckpointError(
            f"{len(missing)} tensor(s) of {what} are not in the checkpoint: {_listing(missing)}"
        )


def count_parameters(tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of values, without BatchNorm's step counters (as a parameter count)."""
    return sum(t.numel() for k, t in tensors.items() if not k.endswith("num_batches_tracked"))


def _listing(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")
