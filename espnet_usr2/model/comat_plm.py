"""Frozen pre-trained language models (PLMs) whose hidden states COMAT distils into the CTC branch.

Two kinds (``comat_conf.plm``):

* ``espnet_lm``: an ESPnet LM of ``usr2.sh`` stage 7 (``espnet2.bin.lm_train``,
  ``TransformerLM`` or ``SequentialRNNLM``), built with ``LMTask.build_model_from_file``.
  It reads this model's own tokens (its token list must be the model's), so PLM token i
  *is* transcript token i. ESPnet's LMs expose only next-token logits, so
  :class:`ESPnetLMEncoder` runs their parts itself: the state after reading
  ``<sos> y_1 .. y_i`` (the last layer, before the output projection) stands for y_i.
* ``hf``: a Hugging Face ``transformers`` encoder (BERT, RoBERTa, ...) read **only** from a
  local directory (``local_files_only``; nothing is downloaded). ``transformers`` is an
  optional extra (``pip install espnet_usr2[comat]``), imported only when this kind is
  used. Its tokenizer differs from ours, so the transcript is mapped
  tokens -> words (:func:`tokens_to_words`) -> the PLM tokenizer's pieces
  (:func:`words_to_pieces`); the PLM's special tokens ([CLS], [SEP], <s>, ...) are dropped.

The PLM is frozen and kept *outside* the module tree (:class:`FrozenPLM`): its weights are
not in the checkpoint, the optimiser, DDP's buckets, or the EMA teacher's copy, and it is
loaded at the first training step, so building the model for inference never reads it.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import yaml
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask
from torch import nn

from espnet_usr2.utils.espnet_lm import load_lm  # the same loading and token check as shallow fusion

PathLike = Union[str, Path]
SENTENCEPIECE_BOUNDARY = "\u2581"
CHAR_SPACE = "<space>"
PLM_KINDS = ("espnet_lm", "hf")


class PLMEncoder(nn.Module):
    """Interface: transcript token ids (B, L) of this model -> PLM states (B, L', D), lengths (B,)."""

    output_size: int

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


# ----------------------------------------------------------------------------- ESPnet LM
class ESPnetLMEncoder(PLMEncoder):
    """Hidden states of an ESPnet ``TransformerLM`` / ``SequentialRNNLM`` over the transcript.

    ``TransformerLM`` applies its ``embed`` and (causal) ``encoder``; ``SequentialRNNLM``
    its embedding (``encoder``) and ``rnn``. Input ``<sos> y_1 .. y_L``; the output at
    position i (1..L) has read y_i, so it is the state aligned with token y_i.
    """

    def __init__(self, lm: nn.Module, sos: int):
        super().__init__()
        self.lm = lm
        self.sos = sos
        if not (hasattr(lm, "rnn") or hasattr(lm, "embed")):
            raise TypeError(f"COMAT: {type(lm).__name__} is neither ESPnet's TransformerLM nor SequentialRNNLM")
        self.output_size = lm.decoder.in_features  # the output projection reads the last hidden state

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # pad with 0 (<blank>, never in a transcript): TransformerLM treats id 0 as padding
        ys = torch.where(text < 0, torch.zeros_like(text), text)
        ys = torch.cat([ys.new_full((ys.size(0), 1), self.sos), ys], dim=1)
        if hasattr(self.lm, "rnn"):
            hidden, _ = self.lm.rnn(self.lm.encoder(ys))
        else:
            mask = (ys != 0).unsqueeze(-2) & subsequent_mask(ys.size(1), device=ys.device).unsqueeze(0)
            hidden, _ = self.lm.encoder(self.lm.embed(ys), mask)
        return hidden[:, 1:], text_lengths


def espnet_lm_output_size(lm_train_config: PathLike) -> int:
    """Hidden size of an ESPnet LM from its config.yaml alone (no weights are read)."""
    config = _read_yaml(lm_train_config, "lm_train_config")
    kind, conf = config.get("lm"), dict(config.get("lm_conf") or {})
    from espnet2.tasks.lm import lm_choices  # only with COMAT on

    cls = lm_choices.get_class(kind)
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    if "att_unit" in defaults:  # TransformerLM
        return int(conf.get("att_unit", defaults["att_unit"]))
    if "nhid" in defaults:  # SequentialRNNLM: nhid defaults to unit
        return int(conf.get("nhid") or conf.get("unit", defaults["unit"]))
    raise ValueError(f"COMAT: lm {kind!r} of {lm_train_config} is neither transformer nor seq_rnn")


def load_espnet_lm_encoder(
    lm_train_config: PathLike, lm_file: Optional[PathLike], token_list: Sequence[str]
) -> ESPnetLMEncoder:
    """The frozen hidden-state reader of a stage-7 LM; its token list must be the model's."""
    lm = load_lm(lm_train_config, lm_file, token_list)
    return ESPnetLMEncoder(lm, sos=len(token_list) - 1)


# ----------------------------------------------------------------------------- Hugging Face
def tokens_to_words(ids: Sequence[int], token_list: Sequence[str]) -> List[str]:
    """This model's token ids -> the words of the transcript.

    SentencePiece pieces start a word with ``▁``; character lists mark spaces with
    ``<space>``; ``<blank>``, ``<unk>``, ``<sos/eos>`` and padding (< 0) carry no text.
    """
    skip = {"<blank>", "<unk>", "<sos/eos>"}
    words: List[str] = []
    current = ""
    for i in ids:
        if i < 0:
            continue
        token = token_list[int(i)]
        if token in skip:
            continue
        if token == CHAR_SPACE or token.startswith(SENTENCEPIECE_BOUNDARY):
            if current:
                words.append(current)
            current = token[1:] if token != CHAR_SPACE else ""
        else:
            current += token
    if current:
        words.append(current)
    return words


def words_to_pieces(words: Sequence[Sequence[str]], tokenizer) -> dict:
    """A batch of word lists -> the PLM tokenizer's padded pieces, with the special-token mask.

    ``tokenizer`` is a Hugging Face tokenizer (``is_split_into_words`` keeps our word
    boundaries; ``return_special_tokens_mask`` lets the caller drop [CLS]/[SEP]).
    """
    return tokenizer(
        [list(w) for w in words],
        is_split_into_words=True,
        padding=True,
        truncation=True,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )


def pack_rows(hidden: torch.Tensor, keep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``keep`` (B, N) positions of (B, N, D), left-aligned and zero-padded: (B, L', D), (B,)."""
    lengths = keep.sum(1)
    out = hidden.new_zeros(hidden.size(0), max(1, int(lengths.max()) if lengths.numel() else 1), hidden.size(2))
    order = torch.cumsum(keep.long(), dim=1) - 1
    rows, cols = keep.nonzero(as_tuple=True)
    out[rows, order[rows, cols]] = hidden[rows, cols]
    return out, lengths


class HFEncoder(PLMEncoder):
    """A Hugging Face encoder over the transcript's words (see :func:`tokens_to_words`)."""

    def __init__(self, model: nn.Module, tokenizer, token_list: Sequence[str]):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.token_list = list(token_list)
        self.output_size = int(model.config.hidden_size)

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        words = [tokens_to_words(row[: int(n)].tolist(), self.token_list) for row, n in zip(text, text_lengths)]
        batch = words_to_pieces(words, self.tokenizer)
        device = text.device
        hidden = self.model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).last_hidden_state
        keep = (batch["special_tokens_mask"] == 0) & (batch["attention_mask"] == 1)
        return pack_rows(hidden, keep.to(device))


def _require_dir(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"COMAT: the pre-trained language model directory {str(path)!r} does not exist "
            "(comat_conf.hf_dir must be a local directory saved with save_pretrained; "
            "nothing is downloaded)"
        )
    return path


def _import_transformers():
    try:
        import transformers
    except ImportError as e:
        raise ImportError(
            "COMAT with plm: hf needs the optional 'transformers' package: "
            "pip install 'espnet_usr2[comat]' (or use plm: espnet_lm)"
        ) from e
    return transformers


def hf_output_size(hf_dir: PathLike) -> int:
    """Hidden size of a local Hugging Face model from its config.json alone."""
    config_file = _require_dir(hf_dir) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"COMAT: {str(config_file)!r} does not exist (not a save_pretrained directory?)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    for key in ("hidden_size", "d_model", "dim"):
        if key in config:
            return int(config[key])
    raise ValueError(f"COMAT: {config_file} names no hidden_size / d_model / dim")


def load_hf_encoder(hf_dir: PathLike, token_list: Sequence[str]) -> HFEncoder:
    """The frozen encoder and tokenizer of a local directory (``local_files_only``)."""
    path = _require_dir(hf_dir)
    transformers = _import_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    return HFEncoder(model, tokenizer, token_list)


# ----------------------------------------------------------------------------- holder
class FrozenPLM:
    """Loads the PLM on first use, frozen and in eval mode, and keeps it out of the module tree.

    Not an ``nn.Module`` attribute on purpose (see the module docstring). ``deepcopy`` (the EMA
    teacher copies the student) shares it instead of copying it.
    """

    def __init__(self, loader: Callable[[], PLMEncoder], output_size: int, description: str):
        self.loader = loader
        self.output_size = output_size
        self.description = description
        self.module: Optional[PLMEncoder] = None

    def get(self, device: torch.device) -> PLMEncoder:
        if self.module is None:
            module = self.loader()
            if module.output_size != self.output_size:
                raise ValueError(
                    f"COMAT: {self.description} has hidden size {module.output_size}, its config "
                    f"said {self.output_size}"
                )
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
            self.module = module
        self.module.to(device)
        return self.module

    @torch.no_grad()
    def __call__(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.get(text.device)(text, text_lengths)

    def __deepcopy__(self, memo) -> "FrozenPLM":
        return self


def build_frozen_plm(
    plm: str,
    token_list: Sequence[str],
    lm_train_config: Optional[PathLike] = None,
    lm_file: Optional[PathLike] = None,
    hf_dir: Optional[PathLike] = None,
    output_size: Optional[int] = None,
) -> FrozenPLM:
    """The PLM of ``comat_conf``: its weights are read at first use, its hidden size now.

    ``output_size`` None: the size comes from the PLM's config file, which must exist (a
    missing PLM is an error at build time). Given (``plm_dim``, which training writes into
    its config.yaml), nothing is read now: the model builds for decoding without the PLM.
    """
    if plm == "espnet_lm":
        if lm_train_config is None:
            raise ValueError(
                "COMAT with plm: espnet_lm needs comat_conf.lm_train_config (and lm_file), "
                "e.g. the config.yaml and valid.loss.best.pth of usr2.sh stage 7"
            )
        if output_size is None:
            for name, path in (("lm_train_config", lm_train_config), ("lm_file", lm_file)):
                if path is not None and not Path(path).is_file():
                    raise FileNotFoundError(f"COMAT: comat_conf.{name} {str(path)!r} does not exist")
            output_size = espnet_lm_output_size(lm_train_config)
        return FrozenPLM(
            lambda: load_espnet_lm_encoder(lm_train_config, lm_file, token_list),
            output_size,
            f"ESPnet LM {lm_train_config}",
        )
    if plm == "hf":
        if hf_dir is None:
            raise ValueError("COMAT with plm: hf needs comat_conf.hf_dir, a local save_pretrained directory")
        return FrozenPLM(
            lambda: load_hf_encoder(hf_dir, token_list),
            hf_output_size(hf_dir) if output_size is None else output_size,
            f"Hugging Face model {hf_dir}",
        )
    raise ValueError(f"COMAT: comat_conf.plm must be one of {PLM_KINDS}, got {plm!r}")


def _read_yaml(path: PathLike, name: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"COMAT: comat_conf.{name} {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}
