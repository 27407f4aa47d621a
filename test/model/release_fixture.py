"""Checkpoints in the released USR 2.0 layout, for the importer's tests.

``fixtures/release_layout.json`` holds the released parameter names and shapes (facts read
from the official code) in compact form; :func:`release_shapes` expands it for a released
size or any other dimensions (a tiny model for end-to-end tests), :func:`random_release_state`
fills it with random values, and :func:`wrap` puts it into the forms the releases come in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "release_layout.json").read_text())
Shape = Tuple[int, ...]


@dataclass(frozen=True)
class Dims:
    adim: int
    aheads: int
    eunits: int
    elayers: int
    dlayers: int
    vocab: int = LAYOUT["vocab"]
    channels: Tuple[int, ...] = tuple(LAYOUT["frontend_channels"])

    @classmethod
    def released(cls, size: str) -> "Dims":
        s = LAYOUT["sizes"][size]
        return cls(s["adim"], s["aheads"], s["eunits"], s["elayers"], s["dlayers"])


TINY = Dims(adim=64, aheads=4, eunits=128, elayers=2, dlayers=1, vocab=12, channels=(8, 16, 32, 64))


def release_shapes(dims: Dims, encoder_only: bool = False) -> Dict[str, Shape]:
    """``{release name: shape}`` of the network (``encoder_only``: the ``encoder.*`` part)."""
    symbols = dict(
        adim=dims.adim,
        aheads=dims.aheads,
        dk=dims.adim // dims.aheads,
        eunits=dims.eunits,
        vocab=dims.vocab,
        idim=dims.channels[-1],
        **{"2idim": 2 * dims.channels[-1]},
        c0=dims.channels[0],
    )
    out: Dict[str, Shape] = {}
    for prefix, fe in LAYOUT["frontends"].items():
        for entry in fe["stem"]:
            _add(out, prefix, entry, symbols)
        cin = dims.channels[0]
        for stage, c in enumerate(dims.channels, 1):
            for block in range(LAYOUT["blocks_per_stage"]):
                local = dict(
                    symbols, c=c, cin=cin if block == 0 else c, k=tuple(fe["kernel"]), k1=tuple(1 for _ in fe["kernel"])
                )
                base = f"{prefix}{fe['trunk']}layer{stage}.{block}."
                entries = LAYOUT["resnet_block"] + (LAYOUT["resnet_downsample"] if block == 0 and cin != c else [])
                for entry in entries:
                    _add(out, base, entry, local)
            cin = c
    for entry in LAYOUT["encoder"]:
        _add(out, "", entry, symbols)
    for i in range(dims.elayers):
        for entry in LAYOUT["encoder_block"]:
            _add(out, f"encoder.encoders.{i}.", entry, symbols)
    if encoder_only:
        return out
    for entry in LAYOUT["heads"]:
        _add(out, "", entry, symbols)
    for i in range(dims.dlayers):
        for entry in LAYOUT["decoder_block"]:
            _add(out, f"decoder.decoders.{i}.", entry, symbols)
    return out


def _add(out: Dict[str, Shape], prefix: str, entry: list, symbols: dict) -> None:
    if len(entry) == 3 and entry[1] == "bn":
        channels = _dim(entry[2], symbols)
        for name in LAYOUT["batch_norm"]:
            out[f"{prefix}{entry[0]}.{name}"] = () if name == "num_batches_tracked" else (channels,)
        return
    name, shape = entry
    dims: List[int] = []
    for s in shape:
        value = _dim(s, symbols)
        dims.extend(value if isinstance(value, tuple) else (value,))
    out[prefix + name] = tuple(dims)


def _dim(symbol, symbols):
    return symbols[symbol] if isinstance(symbol, str) else symbol


def random_release_state(shapes: Dict[str, Shape], seed: int = 0, device: str = "cpu") -> Dict[str, torch.Tensor]:
    """Random values of plausible scale (positive variances, step counters as int64)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if device == "meta":
            dtype = torch.long if name.endswith("num_batches_tracked") else torch.float32
            state[name] = torch.empty(shape, dtype=dtype, device="meta")
        elif name.endswith("num_batches_tracked"):
            state[name] = torch.randint(1, 1000, shape, generator=g)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = shape[1] if len(shape) > 1 else 1
            state[name] = torch.randn(shape, generator=g) / max(1.0, fan_in**0.5)
    return state


@dataclass
class Wrapped:
    """A checkpoint object as saved, and what in it is not the network."""

    obj: object
    extra: Dict[str, torch.Tensor] = field(default_factory=dict)


def wrap(network: Dict[str, torch.Tensor], style: str) -> Wrapped:
    """The network as a release file holds it.

    * ``bare``: the ``E2E`` state dict (``demo.py``'s form after stripping);
    * ``compiled``: ``_orig_mod.model.backbone.`` (a ``torch.compile``-d USR wrapper);
    * ``usr``: ``model.backbone.`` with USR's teacher copy and unlabelled heads beside it;
    * ``lightning``: a training checkpoint, ``state_dict`` of ``model._orig_mod.model.``,
      with an optimizer state beside it;
    * ``ssl``: a self-supervised checkpoint, ``model._orig_mod.model.backbone.encoder.``
      plus the teacher's encoder copy and a predictor;
    * ``ssl_stripped``: the encoder's own names (``learner_ft.py`` after its ``k[39:]``).
    """

    def teacher_and_heads(prefix: str, teacher_keys) -> Dict[str, torch.Tensor]:
        extra = {f"{prefix}target_backbone.{k}": v.clone() for k, v in teacher_keys.items()}
        out = teacher_keys["decoder.out_layer_av.weight"]  # (vocabulary, d): the heads' shape
        for head in ("v", "ctc_av"):
            extra[f"{prefix}out_layer_unlabelled_{head}.weight"] = torch.randn(out.shape, device=out.device)
            extra[f"{prefix}out_layer_unlabelled_{head}.bias"] = torch.randn(out.shape[:1], device=out.device)
        return extra

    if style == "bare":
        return Wrapped(dict(network))
    if style == "compiled":
        return Wrapped({f"_orig_mod.model.backbone.{k}": v for k, v in network.items()})
    if style == "usr":
        extra = teacher_and_heads("model.", network)
        return Wrapped({**{f"model.backbone.{k}": v for k, v in network.items()}, **extra}, extra)
    if style == "lightning":
        extra = teacher_and_heads("model._orig_mod.model.", network)
        state = {**{f"model._orig_mod.model.backbone.{k}": v for k, v in network.items()}, **extra}
        return Wrapped({"state_dict": state, "epoch": 3, "optimizer_states": [{"state": {}}]}, extra)
    if style == "ssl":
        encoder = {k: v for k, v in network.items() if k.startswith("encoder.")}
        extra = {f"model._orig_mod.model.target_backbone.{k[len('encoder.') :]}": v.clone() for k, v in encoder.items()}
        extra["model._orig_mod.model.predictor.last_linear.weight"] = torch.zeros(4, 4)
        decoder_side = {f"model._orig_mod.model.backbone.{k}": v for k, v in network.items() if k not in encoder}
        extra.update(decoder_side)
        return Wrapped({**{f"model._orig_mod.model.backbone.{k}": v for k, v in encoder.items()}, **extra}, extra)
    if style == "ssl_stripped":
        return Wrapped({k[len("encoder.") :]: v for k, v in network.items() if k.startswith("encoder.")})
    raise ValueError(style)


def token_units(n_units: int) -> List[str]:
    """A units file's pieces for a tiny vocabulary: ``<unk>`` then single letters."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["<unk>", "\u2581"] + [c for c in letters[: n_units - 2]]


def write_units(path: Path, units: Sequence[str]) -> Path:
    path.write_text("".join(f"{u} {i}\n" for i, u in enumerate(units, 1)), encoding="utf-8")
    return path
