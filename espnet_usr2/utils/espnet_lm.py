"""Loading an ESPnet language model (``espnet2.bin.lm_train``, stage 7 of ``usr2.sh``) for this
model's token list: shared by shallow fusion (:mod:`espnet_usr2.decode`) and COMAT's PLM
(:mod:`espnet_usr2.model.comat_plm`).

The LM is ESPnet's own (``TransformerLM`` or ``SequentialRNNLM``, built by
``LMTask.build_model_from_file``) and must predict the recognizer's tokens: its token list
has to be the model's, entry for entry (``<sos/eos>`` last in both, so the start and end
symbols agree).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import yaml
from espnet.nets.scorer_interface import BatchScorerInterface

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


class LMMismatchError(ValueError):
    """The language model does not predict the recognizer's token list."""


def _lm_token_list(token_list: Union[str, Sequence[str]]) -> List[str]:
    """An LM training config's ``token_list``: a list, or the path of a tokens.txt."""
    if isinstance(token_list, (str, Path)):
        with open(token_list, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    return list(token_list)


def check_lm_tokens(lm_tokens: Sequence[str], asr_tokens: Sequence[str], lm_train_config: PathLike) -> None:
    """Raise :class:`LMMismatchError` naming the first difference between the two token lists."""
    if list(lm_tokens) == list(asr_tokens):
        return
    if len(lm_tokens) != len(asr_tokens):
        detail = f"{len(lm_tokens)} tokens in the LM, {len(asr_tokens)} in the model"
    else:
        i = next(i for i, (a, b) in enumerate(zip(lm_tokens, asr_tokens)) if a != b)
        detail = f"token {i} is {lm_tokens[i]!r} in the LM and {asr_tokens[i]!r} in the model"
    raise LMMismatchError(
        f"language model {lm_train_config}: its token list is not the model's ({detail}); "
        "train the LM with the recipe's token list (usr2.sh stage 7)"
    )


def check_lm_config(lm_train_config: PathLike, token_list: PathLike) -> None:
    """Check an LM run's config.yaml against a recipe's tokens.txt (``usr2.sh`` stages 8 and 12)."""
    if not Path(lm_train_config).is_file():
        raise FileNotFoundError(f"lm_train_config {str(lm_train_config)!r} does not exist")
    with open(lm_train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if "token_list" not in config:
        raise LMMismatchError(
            f"language model {lm_train_config}: no token_list (not an espnet2.bin.lm_train config.yaml?)"
        )
    check_lm_tokens(_lm_token_list(config["token_list"]), _lm_token_list(str(token_list)), lm_train_config)


def load_lm(
    lm_train_config: PathLike,
    lm_file: Optional[PathLike],
    token_list: Sequence[str],
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """The LM network (``ESPnetLanguageModel.lm``) of an ESPnet LM training run, in eval mode.

    ``lm_file`` None gives random weights (tests); the token list is checked against the model's.
    """
    from espnet2.tasks.lm import LMTask  # only when an LM is used: decoding without one never imports it

    for name, path in (("lm_train_config", lm_train_config), ("lm_file", lm_file)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name} {str(path)!r} does not exist")
    model, args = LMTask.build_model_from_file(lm_train_config, lm_file, str(device))
    check_lm_tokens(_lm_token_list(args.token_list), token_list, lm_train_config)
    lm = model.lm
    if not isinstance(lm, BatchScorerInterface):
        raise LMMismatchError(
            f"language model {lm_train_config}: {type(lm).__name__} has no batch_score "
            "(ESPnet's BatchScorerInterface); use lm: transformer or seq_rnn"
        )
    return lm.to(dtype=dtype).eval()
