"""espnet_usr2: USR 2.0 (Haliassos et al., "Pay Attention to CTC", ICLR 2026) for ESPnet.

One model for auditory (A), visual (V) and audio-visual (AV) speech recognition, trained
semi-supervised with CTC-driven teacher forcing. Importing this package is cheap; the
ESPnet task lives in :mod:`espnet_usr2.tasks.usr2`.
"""

import importlib
import importlib.util
import sys
import types

from espnet_usr2.version import __version__

__all__ = ["__version__"]


class _ImportedOnFirstUse(types.ModuleType):
    """A stand-in for a module that is imported for real when one of its names is first read."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # introspection (inspect.getmodule reads __file__ of every module)
            raise AttributeError(name)
        del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def _defer_g2p_en() -> None:
    """ESPnet's text package imports ``g2p_en`` at import time (``espnet2.text.phoneme_tokenizer``,
    reached from every tokenizer and preprocessor), and ``g2p_en`` asks NLTK to download two
    corpora the moment it is imported: offline that printed eight lines of download errors
    for every command, and the import took about 6 s -- for a phoneme tokenizer these models
    never use. It is imported when first used instead."""
    spec = importlib.util.find_spec("g2p_en") if "g2p_en" not in sys.modules else None
    if spec is not None:
        placeholder = _ImportedOnFirstUse("g2p_en")
        placeholder.__file__ = spec.origin
        sys.modules["g2p_en"] = placeholder


_defer_g2p_en()
