"""Names of the three input modalities of the unified model.

Short names (``v``, ``a``, ``av``) key heads, loss weights and logged statistics; the long
names are used for directories of decoding results.
"""

from typing import Dict, Iterable, Mapping, Optional, Tuple

VIDEO = "v"
AUDIO = "a"
AUDIOVISUAL = "av"
MODALITIES: Tuple[str, ...] = (VIDEO, AUDIO, AUDIOVISUAL)
LONG_NAMES: Dict[str, str] = {VIDEO: "video", AUDIO: "audio", AUDIOVISUAL: "audiovisual"}
# the modality one transcript of a recording carries, best first (every released model's WER:
# AV <= A < V, paper Table 2)
BEST_FIRST: Tuple[str, ...] = (AUDIOVISUAL, AUDIO, VIDEO)
_BY_ANY_NAME = {**{m: m for m in MODALITIES}, **{v: k for k, v in LONG_NAMES.items()}}


def canonical_modality(name: str) -> str:
    """'v' / 'video' -> 'v', etc.; a clear error for anything else."""
    try:
        return _BY_ANY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; expected one of {sorted(_BY_ANY_NAME)}") from None


def canonical_modalities(names: Iterable[str]) -> Tuple[str, ...]:
    """Canonical short names, in the fixed order v, a, av, without duplicates."""
    wanted = {canonical_modality(n) for n in names}
    if not wanted:
        raise ValueError("at least one modality is needed")
    return tuple(m for m in MODALITIES if m in wanted)


def best_modality(allowed: Iterable[str]) -> str:
    """The first of :data:`BEST_FIRST` among ``allowed`` (any modality names)."""
    names = set(canonical_modalities(allowed))
    return next(m for m in BEST_FIRST if m in names)


def needs_video(modalities: Iterable[str]) -> bool:
    return any(m in (VIDEO, AUDIOVISUAL) for m in modalities)


def needs_audio(modalities: Iterable[str]) -> bool:
    return any(m in (AUDIO, AUDIOVISUAL) for m in modalities)


def merge_modality_values(defaults: Mapping[str, float], overrides: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """``defaults`` with the ``overrides`` (keyed by any modality name) applied, as floats."""
    merged = {m: float(v) for m, v in defaults.items()}
    for name, value in (overrides or {}).items():
        merged[canonical_modality(name)] = float(value)
    return merged
