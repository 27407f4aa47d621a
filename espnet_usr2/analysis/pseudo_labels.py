"""How good are the teacher's pseudo-labels? Scored against transcripts training never reads.

USR 2.0's argument (paper Sec. 4, Fig. 2 / Table 9) is about the pseudo-labels themselves:
collapsed greedy CTC labels (eq. 3) and attention labels from CTC-driven teacher forcing
(eq. 4) stay sane on long inputs, where autoregressive labels loop or stop early. Unlabelled
clips that do have transcripts (the mini corpus's unlabelled set, VoxCeleb2 with ASR
transcripts) let that be measured directly: for each clip the teacher makes all three kinds,

* ``ctc``: greedy CTC on the AV stream, collapsed (what eq. 5 trains the CTC head on);
* ``att_tf``: the attention labels of CTC-driven teacher forcing (eq. 4), ``<eos>`` dropped;
* ``ar``: greedy autoregressive decoding up to the step limit USR uses (T // 5),

and each is scored against the transcript per length bucket: WER, repetition loops and
omissions (:mod:`espnet_usr2.analysis.failures`), and the share the confidence filters keep
(eq. 13's sequence mask for ``ctc``, eq. 11's token mask for the attention kinds).

The teacher runs as in training: dropout off, batch norm on the batch's statistics
(``batch``, USR's code) or the stored running statistics (``running``), clean or augmented
view, the AR step limit per utterance or per padded batch (USR's code).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import torch

from espnet_usr2.analysis.failures import is_omission, repetition_failure
from espnet_usr2.scoring.sclite import ErrorCounts, count_errors
from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
from espnet_usr2.semi.confidence import ConfidenceConfig
from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels
from espnet_usr2.semi.teacher import BATCH_NORM_MODES, set_teacher_mode
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels, ctc_driven_teacher_forcing
from espnet_usr2.utils.modalities import AUDIOVISUAL

KINDS = ("ctc", "att_tf", "ar")
RESULTS_JSON = "results.json"  # {teacher setting: {length bucket | "all": {kind: row}}}
VIEWS = ("clean", "augmented")


@dataclass(frozen=True)
class TeacherSetting:
    """How the teacher runs: its batch norm, its view, the AR step limit, the threshold tau."""

    batch_norm: str = "batch"
    view: str = "clean"
    ar_limit_over: str = "utterance"
    ar_max_len_ratio: float = 0.2
    threshold: float = 0.8

    def __post_init__(self):
        if self.batch_norm not in BATCH_NORM_MODES:
            raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {self.batch_norm!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        ARDecodingConfig(self.ar_max_len_ratio, limit_over=self.ar_limit_over)  # checks the values

    @property
    def name(self) -> str:
        return f"bn={self.batch_norm} view={self.view} ar_limit={self.ar_limit_over}"


@dataclass
class UtterancePL:
    """One clip's pseudo-labels of every kind: text and the share its confidence filter keeps."""

    key: str
    frames: int
    text: Dict[str, str] = field(default_factory=dict)
    keep: Dict[str, float] = field(default_factory=dict)


def teacher_network(net: torch.nn.Module, batch_norm: str) -> torch.nn.Module:
    """A copy of ``net`` set up as the EMA teacher runs in training: dropout off; BatchNorm on
    each batch's statistics (``batch``) or the stored running statistics (``running``)."""
    teacher = copy.deepcopy(net)
    set_teacher_mode(teacher, batch_norm)
    return teacher


def _token_lists(tokens: torch.Tensor, lengths: torch.Tensor, drop: Iterable[int]) -> List[List[int]]:
    drop = set(drop)
    return [[t for t in row[: int(n)].tolist() if t not in drop] for row, n in zip(tokens, lengths)]


def _token_keep(pl: AttentionPseudoLabels) -> List[float]:
    return [float(m[: int(n)].float().mean()) if int(n) else 0.0 for m, n in zip(pl.mask, pl.lengths)]


@torch.no_grad()
def batch_pseudo_labels(
    teacher: torch.nn.Module, batch: Mapping[str, torch.Tensor], setting: TeacherSetting, sos: int, eos: int
) -> Tuple[Dict[str, List[List[int]]], Dict[str, List[float]], torch.Tensor]:
    """The three kinds of pseudo-labels of one batch: ``({kind: token ids per clip}, {kind:
    kept share per clip}, frames per clip)``; ``teacher`` from :func:`teacher_network`."""
    encoded = teacher.encode(
        batch["speech"],
        batch["speech_lengths"],
        batch["video"],
        batch["video_lengths"],
        modalities=[AUDIOVISUAL],
        augment=setting.view == "augmented",
        time_masking=False,
    )
    enc, lengths = encoded[AUDIOVISUAL]
    logp = teacher.ctc_head(AUDIOVISUAL).log_softmax(enc)
    ctc = ctc_pseudo_labels(logp, lengths, ConfidenceConfig(threshold=setting.threshold))
    forced = ctc_driven_teacher_forcing(
        teacher.decoder, enc, lengths, ctc.tokens, ctc.lengths, sos, eos, setting.threshold, modality=AUDIOVISUAL
    )
    ar = ar_greedy_pseudo_labels(
        teacher.decoder,
        enc,
        lengths,
        sos,
        eos,
        ARDecodingConfig(setting.ar_max_len_ratio, limit_over=setting.ar_limit_over),
        setting.threshold,
        modality=AUDIOVISUAL,
    )
    special = (0, sos, eos)
    tokens = {
        "ctc": _token_lists(ctc.tokens, ctc.lengths, special),
        "att_tf": _token_lists(forced.tokens, forced.lengths, special),
        "ar": _token_lists(ar.tokens, ar.lengths, special),
    }
    keep = {"ctc": ctc.mask.float().tolist(), "att_tf": _token_keep(forced), "ar": _token_keep(ar)}
    return tokens, keep, lengths


def bucket_label(lo: int, hi: int) -> str:
    """The results' name of the bucket ``[lo, hi)``: ``"lo-(hi-1)"``, its first and last frame."""
    return f"{lo}-{hi - 1}"


def bucket_first_frame(label: str) -> int:
    return int(label.split("-")[0])


def bucket_centre(label: str) -> float:
    """The middle frame of a :func:`bucket_label` (where a plot puts its point)."""
    first, last = map(int, label.split("-"))
    return (first + last) / 2


def bucket_of(frames: int, width: int) -> Tuple[int, int]:
    """The length bucket ``[lo, hi)`` (in frames) a clip falls in."""
    lo = frames // width * width
    return lo, lo + width


@dataclass
class KindScore:
    """The pseudo-labels of one kind over one bucket of clips."""

    utterances: int = 0
    counts: ErrorCounts = field(default_factory=ErrorCounts)
    loops: int = 0
    omissions: int = 0
    keep_sum: float = 0.0

    def add(self, ref: str, hyp: str, keep: float) -> None:
        self.utterances += 1
        self.counts = self.counts + count_errors(ref.split(), hyp.split())
        self.loops += repetition_failure(ref, hyp) is not None
        self.omissions += is_omission(ref, hyp)
        self.keep_sum += keep

    def row(self) -> Dict[str, float]:
        n_ref = max(self.counts.n_ref, 1)
        return {
            "utterances": self.utterances,
            "wer": 100.0 * self.counts.errors / n_ref,
            "loops": self.loops,
            "omissions": self.omissions,
            "kept": self.keep_sum / self.utterances if self.utterances else float("nan"),
        }


def score(
    utterances: Sequence[UtterancePL], refs: Mapping[str, str], bucket_frames: int
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{bucket label: {kind: row}}`` plus an ``all`` bucket; a clip without a transcript is an
    error naming it (the point is scoring against the truth)."""
    missing = [u.key for u in utterances if u.key not in refs]
    if missing:
        raise ValueError(f"{len(missing)} clip(s) have no transcript in the reference: {', '.join(missing[:5])}")
    buckets: Dict[Tuple[int, int], Dict[str, KindScore]] = {}
    overall = {kind: KindScore() for kind in KINDS}
    for u in utterances:
        scores = buckets.setdefault(bucket_of(u.frames, bucket_frames), {kind: KindScore() for kind in KINDS})
        for kind in KINDS:
            for target in (scores[kind], overall[kind]):
                target.add(refs[u.key], u.text[kind], u.keep[kind])
    table = {
        bucket_label(lo, hi): {k: s.row() for k, s in scores.items()} for (lo, hi), scores in sorted(buckets.items())
    }
    table["all"] = {k: s.row() for k, s in overall.items()}
    return table


def markdown(results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]) -> str:
    """One table per teacher setting: a row per length bucket, WER / loops / omissions / kept per kind."""
    lines = []
    for setting, table in results.items():
        lines += [
            f"### {setting}",
            "",
            "| frames | clips | " + " | ".join(f"{k} WER | {k} loops | {k} omissions | {k} kept" for k in KINDS) + " |",
            "|---|---|" + "---|" * (4 * len(KINDS)),
        ]
        for bucket, rows in table.items():
            cells = []
            for kind in KINDS:
                r = rows[kind]
                cells += [f"{r['wer']:.1f}", str(r["loops"]), str(r["omissions"]), f"{100 * r['kept']:.0f} %"]
            lines.append(f"| {bucket} | {rows[KINDS[0]]['utterances']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_wer_vs_length(results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]], path: Path) -> None:
    """WER against input length per kind of label (the paper's length-generalisation figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for setting, table in results.items():
        buckets = [b for b in table if b != "all"]
        centres = [bucket_centre(b) for b in buckets]
        for kind in KINDS:
            label = kind if len(results) == 1 else f"{kind} ({setting})"
            ax.plot(centres, [table[b][kind]["wer"] for b in buckets], marker="o", label=label)
    ax.set_xlabel("input length (frames, 25 fps)")
    ax.set_ylabel("pseudo-label WER (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]], out_dir: Path, header: str = ""
) -> List[Path]:
    """``results.md``, ``results.json`` and ``wer_vs_length.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js, png = out_dir / "results.md", out_dir / RESULTS_JSON, out_dir / "wer_vs_length.png"
    md.write_text((header + "\n\n" if header else "") + markdown(results), encoding="utf-8")
    js.write_text(json.dumps(results, indent=1), encoding="utf-8")
    plot_wer_vs_length(results, png)
    return [md, js, png]
