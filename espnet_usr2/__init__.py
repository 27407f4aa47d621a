"""espnet_usr2: USR 2.0 (Haliassos et al., "Pay Attention to CTC", ICLR 2026) for ESPnet.

One model for auditory (A), visual (V) and audio-visual (AV) speech recognition, trained
semi-supervised with CTC-driven teacher forcing. Importing this package is cheap; the
ESPnet task lives in :mod:`espnet_usr2.tasks.usr2`.
"""
from espnet_usr2.version import __version__

__all__ = ["__version__"]
