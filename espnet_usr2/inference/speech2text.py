"""USR2Speech2Text: a trained USR 2.0 model as a function from arrays to transcripts.

The counterpart of ESPnet's ``Speech2Text`` (``espnet2/bin/asr_inference.py``, which is
tied to ``ASRTask`` and one ``speech`` input) for the unified model: it takes a 16 kHz
waveform and/or a mouth-ROI array, encodes them once (``model.encode`` stacks the
requested modalities into one encoder pass) and searches every modality the inputs allow
with that modality's CTC and decoder heads -- V needs the video, A the audio, AV both.

The batch decoder (:func:`espnet_usr2.inference.inference.inference`, ``usr2_inference``)
runs through the same :meth:`USR2Speech2Text.decode_batch`, so a notebook and a data
directory give the same hypotheses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import yaml
from espnet2.text.build_tokenizer import build_tokenizer
from espnet2.text.token_id_converter import TokenIDConverter

from espnet_usr2.data.av_sync import align_audio_to_video
from espnet_usr2.decode.espnet_beam import espnet_beam_search
from espnet_usr2.decode.fast_beam import fast_beam_search
from espnet_usr2.decode.greedy import greedy_attention, greedy_ctc
from espnet_usr2.decode.hyps import DecodeOptions, Hyp, empty_hyp, transcription_search
from espnet_usr2.inference.model_dir import ModelFiles, resolve_model_dir, resolved_train_config
from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.utils.espnet_lm import load_lm
from espnet_usr2.utils.modalities import LONG_NAMES, MODALITIES, canonical_modalities, needs_audio, needs_video

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
ArrayLike = Union[np.ndarray, torch.Tensor]
SPEECH, VIDEO_NAME = "speech", "video"
MODEL_ROLES = ("student", "teacher")
#: keys of a decoding YAML that are usr2_inference options rather than search settings
DECODE_YAML_OTHER_KEYS = ("batch_size",)
#: keys of a decoding YAML that name the shallow-fusion LM's files (USR2Speech2Text arguments)
DECODE_YAML_LM_KEYS = ("lm_train_config", "lm_file")


class Result(NamedTuple):
    """One hypothesis, as ESPnet's ``Speech2Text`` returns it: ``text, token, token_int, hyp``."""

    text: str
    token: List[str]
    token_int: List[int]
    hyp: Hyp

    @property
    def score(self) -> float:
        """The search score (log domain) of the hypothesis."""
        return self.hyp.score


@dataclass
class BatchHyps:
    """N-best lists of a batch per modality, and the seconds spent encoding and searching."""

    nbest: Dict[str, List[List[Hyp]]]
    seconds: Dict[str, float] = field(default_factory=dict)  # "encode", then one entry per modality


@dataclass
class Transcription:
    """What :meth:`USR2Speech2Text.transcribe` returns for one utterance."""

    nbest: Dict[str, List[Result]]  # modality -> hypotheses, best first
    seconds: Dict[str, float]  # "encode" (all modalities at once), then one search time per modality
    num_frames: int  # 25 fps input frames that were decoded


def select_network(model: torch.nn.Module, role: str) -> torch.nn.Module:
    """The student (the model itself) or the network its EMA teacher holds (``model.teacher.model``:
    the teacher itself is the EMA wrapper, with the schedule's state, not the recogniser)."""
    if role not in MODEL_ROLES:
        raise ValueError(f"unknown model_role {role!r}; expected one of {MODEL_ROLES}")
    if role == "student":
        return model
    teacher = getattr(model, "teacher", None)
    if teacher is None:
        raise ValueError(
            "--model_role teacher: this model has no EMA teacher (model.teacher); it was not "
            "trained semi-supervised. Decode it with --model_role student"
        )
    return teacher.model


def _read_decode_yaml(path: PathLike) -> Dict[str, Any]:
    """A decoding config as a mapping; any key that is neither a :class:`DecodeOptions` field,
    a batch-decoding option nor an LM file is an error naming it."""
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if not isinstance(conf, dict):
        raise ValueError(f"decoding config {path}: expected a mapping of options, got {type(conf).__name__}")
    known = DecodeOptions.field_names()
    unknown = sorted(set(conf) - known - set(DECODE_YAML_OTHER_KEYS) - set(DECODE_YAML_LM_KEYS))
    if unknown:
        raise ValueError(f"decoding config {path}: unknown option(s) {unknown}; known: {sorted(known)}")
    return conf


def decode_options_from_yaml(path: PathLike) -> DecodeOptions:
    """Search settings of a decoding config (``conf/decode_*.yaml``).

    Keys that are batch-decoding options (``batch_size``) or LM files (:func:`lm_files_from_yaml`)
    are ignored; anything else that is not a :class:`DecodeOptions` field is an error naming it.
    """
    return DecodeOptions.from_mapping(_read_decode_yaml(path))


def lm_files_from_yaml(path: PathLike) -> Dict[str, str]:
    """``lm_train_config`` / ``lm_file`` of a decoding config (those it names)."""
    return {k: v for k, v in _read_decode_yaml(path).items() if k in DECODE_YAML_LM_KEYS and v is not None}


def _as_tensor(x: ArrayLike, name: str, ndim: int, shape_hint: str) -> torch.Tensor:
    """An input array as a float tensor; integer audio is scaled to [-1, 1)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {shape_hint}, got an array of shape {tuple(t.shape)}")
    if name == SPEECH and not t.is_floating_point():
        t = t.double() / float(torch.iinfo(t.dtype).max + 1)  # int16 PCM -> [-1, 1)
    return t.float()


class USR2Speech2Text:
    """Decode a waveform and/or mouth ROIs with a trained USR 2.0 model, per modality.

    Args:
        train_config: the training ``config.yaml``.
        model_file: the model ``.pth`` (random weights if None).
        modalities: what to decode when the inputs allow it (any of ``v a av``).
        opts: search settings; default :func:`transcription_search` (joint CTC/attention beam
            search, beam 10, CTC weight 0.3, end detection), or give :class:`DecodeOptions`
            fields as keywords (``**search``, the others as the released search: beam 40, CTC
            weight 0.1, no end detection).
        device: ``cpu``, ``cuda``, ``cuda:N``.
        dtype: ``float32``, ``float16`` or ``float64`` for the model and the inputs.
        model_role: ``student`` or ``teacher`` (the EMA teacher of a semi-supervised run).
        token_type, bpemodel: the text converter; default: the training config's.
        lm_train_config, lm_file: an ESPnet LM (``espnet2.bin.lm_train``, usr2.sh stage 7)
            with the model's token list, fused into the beam search with weight
            ``opts.lm_weight`` (shallow fusion). Greedy methods do not use it.

    Examples:
        >>> import soundfile
        >>> from espnet_usr2.data.roi_io import load_roi
        >>> s2t = USR2Speech2Text.from_pretrained("exp/usr2_base")  # or an imported release, a packed zip
        >>> speech, rate = soundfile.read("utt.wav")  # 16 kHz mono
        >>> video = load_roi("utt.mkv")  # (T, 96, 96) uint8 mouth crops at 25 fps
        >>> results = s2t(speech=speech, video=video)
        >>> text, token, token_int, hyp = results["av"][0]
        >>> {m: nbest[0].text for m, nbest in results.items()}
        {'v': '...', 'a': '...', 'av': '...'}
        >>> s2t(video=video).keys()  # video only: only V can be decoded
        dict_keys(['v'])
    """

    def __init__(
        self,
        train_config: PathLike,
        model_file: Optional[PathLike] = None,
        modalities: Sequence[str] = MODALITIES,
        opts: Optional[DecodeOptions] = None,
        device: str = "cpu",
        dtype: str = "float32",
        model_role: str = "student",
        token_type: Optional[str] = None,
        bpemodel: Optional[str] = None,
        lm_train_config: Optional[PathLike] = None,
        lm_file: Optional[PathLike] = None,
        **search: Any,
    ):
        if opts is not None and search:
            raise ValueError(f"give the search settings as opts or as keywords, not both: {sorted(search)}")
        self.opts = opts if opts is not None else DecodeOptions(**search) if search else transcription_search()
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA device is available here; use device='cpu'")
        # a recipe's config names its token list and SentencePiece model relative to the recipe:
        # found from anywhere (beside the config, in its parents), for every entry point
        with resolved_train_config(train_config) as (config, resolved_bpemodel):
            model, train_args = USR2Task.build_model_from_file(config, model_file, device)
        self.dtype = getattr(torch, dtype)
        self.model = model.to(dtype=self.dtype).eval()
        self.net = select_network(model, model_role).eval()
        self.train_args = train_args
        self.modalities = canonical_modalities(modalities)
        self.token_list = list(model.token_list)
        self.vocab_size = len(self.token_list)
        self.sos = self.eos = self.vocab_size - 1
        self.blank = 0
        self.converter = TokenIDConverter(token_list=self.token_list)
        token_type = token_type or getattr(train_args, "token_type", None)
        bpemodel = bpemodel or resolved_bpemodel
        self.tokenizer = None
        if token_type is not None and not (token_type == "bpe" and bpemodel is None):
            self.tokenizer = build_tokenizer(token_type=token_type, bpemodel=bpemodel)
        elif token_type == "bpe":
            log.warning("token_type bpe without a bpemodel: text is the tokens joined, '\u2581' read as a space")
        self.lm = self._fusion_lm(lm_train_config, lm_file)

    def _fusion_lm(self, lm_train_config: Optional[PathLike], lm_file: Optional[PathLike]) -> Optional[torch.nn.Module]:
        """The LM the beam search fuses, or None (no LM, weight 0, or a greedy method)."""
        opts = self.opts
        if lm_train_config is None:
            if lm_file is not None:
                raise ValueError("lm_file given without lm_train_config (the LM's config.yaml)")
            if opts.lm_weight > 0:
                raise ValueError(
                    f"lm_weight {opts.lm_weight} needs a language model: give lm_train_config (and lm_file)"
                )
            return None
        if opts.lm_weight == 0:
            log.info("lm_weight is 0: the language model %s is not used", lm_train_config)
            return None
        if opts.method != "beam":
            log.warning(
                "method %s ignores the language model (lm_weight %s): shallow fusion is for the beam search",
                opts.method,
                opts.lm_weight,
            )
            return None
        lm = load_lm(lm_train_config, lm_file, self.token_list, self.device, self.dtype)
        log.info(
            "shallow fusion: language model %s (%s), lm_weight %s",
            lm_file or lm_train_config,
            type(lm).__name__,
            opts.lm_weight,
        )
        return lm

    @classmethod
    def from_pretrained(
        cls,
        model_dir: PathLike,
        model_file: Optional[PathLike] = None,
        inference_config: Optional[PathLike] = None,
        unpack_dir: Optional[PathLike] = None,
        **kwargs: Any,
    ) -> "USR2Speech2Text":
        """Load a model directory: an imported release, ``exp/<tag>`` or a packed zip.

        The search settings come from ``kwargs`` (``opts=`` or fields), else from
        ``inference_config``, else from the decoding config shipped with the model, else
        the defaults. See :mod:`espnet_usr2.inference.model_dir` for what is looked for.
        """
        files = resolve_model_dir(model_dir, model_file, unpack_dir)
        return cls.from_model_files(files, inference_config, **kwargs)

    @classmethod
    def from_model_files(
        cls, files: ModelFiles, inference_config: Optional[PathLike] = None, **kwargs: Any
    ) -> "USR2Speech2Text":
        """:meth:`from_pretrained` for already resolved :class:`ModelFiles`."""
        search_keys = DecodeOptions.field_names() | {"opts"}
        decode_config = inference_config or files.decode_config
        if decode_config is not None and not search_keys & set(kwargs):
            log.info("decoding config: %s", decode_config)
            kwargs["opts"] = decode_options_from_yaml(decode_config)
            if not set(DECODE_YAML_LM_KEYS) & set(kwargs):
                kwargs.update(lm_files_from_yaml(decode_config))
        return cls(files.train_config, files.model_file, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def samples_per_frame(self) -> int:
        return self.model.samples_per_frame

    # ------------------------------------------------------------------ arrays

    @torch.no_grad()
    def __call__(
        self,
        speech: Optional[ArrayLike] = None,
        video: Optional[ArrayLike] = None,
        modalities: Optional[Sequence[str]] = None,
    ) -> Dict[str, List[Result]]:
        """N-best :class:`Result` lists per modality for one utterance.

        Args:
            speech: 16 kHz mono waveform (S,), float in [-1, 1] or integer PCM.
            video: mouth ROIs (T, H, W) at 25 fps, gray 0..255 (uint8 or float), as the
                ``roi_video`` data type and ``usr2_prepare_roi`` give them.
            modalities: a subset of the decoder's modalities; default all of them. Only
                those the inputs allow are decoded.
        """
        return self.transcribe(speech, video, modalities).nbest

    @torch.no_grad()
    def transcribe(
        self,
        speech: Optional[ArrayLike] = None,
        video: Optional[ArrayLike] = None,
        modalities: Optional[Sequence[str]] = None,
    ) -> Transcription:
        """As :meth:`__call__`, with the timings and the number of decoded frames."""
        wanted = self.modalities_for(speech is not None, video is not None, modalities)
        batch = self.make_batch(speech if needs_audio(wanted) else None, video if needs_video(wanted) else None)
        decoded = self.decode_batch(batch, wanted)
        nbest = {m: [self.result(h) for h in per_utt[0]] for m, per_utt in decoded.nbest.items()}
        return Transcription(nbest, decoded.seconds, int(self.frames(batch, wanted)[0]))

    def modalities_for(self, has_speech: bool, has_video: bool, modalities: Optional[Sequence[str]] = None) -> tuple:
        """The requested modalities (default: the decoder's) that the given inputs allow."""
        requested = self.modalities if modalities is None else canonical_modalities(modalities)
        allowed = tuple(
            m for m in requested if (has_video or not needs_video([m])) and (has_speech or not needs_audio([m]))
        )
        if not allowed:
            given = [n for n, ok in ((SPEECH, has_speech), (VIDEO_NAME, has_video)) if ok] or ["nothing"]
            raise ValueError(
                f"cannot decode {[LONG_NAMES[m] for m in requested]} from {' and '.join(given)}: "
                "video needs the mouth ROIs (video=), audio the waveform (speech=), "
                "audiovisual both"
            )
        return allowed

    def make_batch(
        self, speech: Optional[ArrayLike] = None, video: Optional[ArrayLike] = None
    ) -> Dict[str, torch.Tensor]:
        """A batch of one utterance on the model's device, audio cut to the video as in training data."""
        batch: Dict[str, torch.Tensor] = {}
        if video is not None:
            v = _as_tensor(video, VIDEO_NAME, 3, "(T, H, W) gray mouth crops")
            batch[VIDEO_NAME], batch["video_lengths"] = v[None], torch.tensor([v.size(0)])
        if speech is not None:
            s = _as_tensor(speech, SPEECH, 1, "a mono waveform (S,)")
            if video is not None:  # the same trim / pad as the data loader's preprocessing
                s = torch.from_numpy(
                    align_audio_to_video(
                        "input",
                        s.cpu().numpy(),
                        batch["video_lengths"].item(),
                        self.samples_per_frame,
                        self.model.av_length_tolerance,
                    )
                )
            batch[SPEECH], batch["speech_lengths"] = s[None], torch.tensor([s.size(0)])
        return {k: v.to(self.device, dtype=self.dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}

    def result(self, hyp: Hyp) -> Result:
        """Text, tokens and token ids of a hypothesis (ESPnet's ``Speech2Text`` tuple)."""
        token_int = hyp.token_ids(self.sos, self.eos, self.blank)
        tokens = self.converter.ids2tokens(token_int)
        return Result(self.tokens_to_text(tokens), tokens, token_int, hyp)

    def text_of(self, token_int: Sequence[int]) -> str:
        """The text of token ids (no blank, sos or eos among them)."""
        return self.tokens_to_text(self.converter.ids2tokens(list(token_int)))

    def tokens_to_text(self, tokens: Sequence[str]) -> str:
        if self.tokenizer is not None:
            return self.tokenizer.tokens2text(tokens)
        return "".join(tokens).replace("\u2581", " ").strip()

    # ------------------------------------------------------------------ batches

    def frames(self, batch: Dict[str, torch.Tensor], modalities: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Input frames (25 fps) per utterance: the smallest over the streams the modalities need."""
        modalities = self.modalities if modalities is None else modalities
        counts = []
        if needs_audio(modalities):
            counts.append(batch["speech_lengths"] // self.samples_per_frame)
        if needs_video(modalities):
            counts.append(batch["video_lengths"])
        return torch.stack(counts).min(0).values

    @torch.no_grad()
    def decode_batch(self, batch: Dict[str, torch.Tensor], modalities: Optional[Sequence[str]] = None) -> BatchHyps:
        """N-best lists per modality for every utterance of a padded batch (with ``*_lengths``).

        One encoder pass for all modalities, then one search per modality. An utterance
        without input frames gets an empty hypothesis; the caller reports it.
        """
        modalities = self.modalities if modalities is None else canonical_modalities(modalities)
        frames = self.frames(batch, modalities)
        n_utts = frames.numel()
        out = BatchHyps({m: [[empty_hyp(self.sos, self.eos)] for _ in range(n_utts)] for m in modalities})
        keep = torch.nonzero(frames > 0).view(-1)
        if keep.numel() == 0:
            return out
        start = time.perf_counter()
        encoded = self.net.encode(**self._inputs(batch, keep, modalities), modalities=modalities, augment=False)
        out.seconds["encode"] = self._elapsed(start)
        for m, (enc, enc_lens) in encoded.items():
            start = time.perf_counter()
            for i, nbest in zip(keep.tolist(), self.search(enc, enc_lens, m)):
                out.nbest[m][i] = nbest or [empty_hyp(self.sos, self.eos)]
            out.seconds[m] = self._elapsed(start)
        return out

    def _elapsed(self, start: float) -> float:
        """Seconds since ``start``, after the device finished its queued work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def _inputs(
        self, batch: Dict[str, torch.Tensor], keep: torch.Tensor, modalities: Sequence[str]
    ) -> Dict[str, torch.Tensor]:
        """The non-empty utterances' streams that the modalities use, padding trimmed."""
        out = {}
        for name in ((SPEECH,) if needs_audio(modalities) else ()) + ((VIDEO_NAME,) if needs_video(modalities) else ()):
            lengths = batch[f"{name}_lengths"].index_select(0, keep.to(batch[f"{name}_lengths"].device))
            x = batch[name].index_select(0, keep.to(batch[name].device))[:, : int(lengths.max())]
            out[name], out[f"{name}_lengths"] = x, lengths
        return out

    def search(self, enc: torch.Tensor, enc_lens: torch.Tensor, modality: str) -> List[List[Hyp]]:
        """Search every utterance of one modality's encoder output with the configured method."""
        opts = self.opts
        if opts.method == "greedy_ctc":
            return greedy_ctc(self.net, enc, enc_lens, modality, self.sos, self.eos, self.blank)
        if opts.method == "greedy_att":
            return greedy_attention(self.net, enc, enc_lens, modality, opts, self.sos, self.eos)
        if opts.beam_impl == "espnet":
            return espnet_beam_search(
                self.net, enc, enc_lens, modality, opts, self.sos, self.eos, self.vocab_size, lm=self.lm
            )
        return fast_beam_search(self.net, enc, enc_lens, modality, opts, self.sos, self.eos, self.blank, lm=self.lm)
