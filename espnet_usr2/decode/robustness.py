"""The paper's robustness analyses (Sec. 5.1, 5.2): WER by input length, WER in babble noise.

* **Length** -- utterances are bucketed by their number of video frames (25 fps) in steps of
  50 from 50 to 600 frames; buckets are half-open ``[lo, hi)`` except the last, which also
  holds ``hi`` (600).  Utterances outside 50-600 are counted, not scored.  WER per bucket is
  the corpus-level rate (errors summed over the bucket's utterances / reference words),
  with the same alignment as sclite (:func:`espnet_usr2.decode.scoring.count_errors`).
* **Noise** -- :func:`mix_at_snr` adds noise to a 16 kHz waveform at an exact SNR (power ratio
  over the whole utterance).  The noise comes from a user's file (:class:`FileNoise`: looped or
  cropped, at an offset fixed by the seed and the utterance id) or is babble synthesised from
  other utterances of the corpus (:class:`CorpusBabble`: a seeded choice of talkers, each at
  equal level), or :func:`make_babble_noise` builds one babble file the way AV-HuBERT's
  LRS3 recipe does.  The same utterance gets the same noise at every SNR, so SNR curves compare
  like with like.  :func:`write_noisy_wav_scp` makes a noisy copy of a ``wav.scp`` for decoding.
* **Reports** -- Markdown tables and PNG plots (matplotlib, Agg backend), one line per
  modality / decoding method; the noise table for all samples and for those longer than 100
  frames.

Decoding is not done here: hypotheses come in as Kaldi ``text`` files per condition.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_usr2.decode.scoring import ErrorCounts, ScoringInputError, _name_ids, count_errors, match_hypotheses

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

SAMPLE_RATE = 16000
FRAME_RATE = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # 640
PAPER_SNRS_DB: Tuple[float, ...] = (10.0, 5.0, 0.0, -5.0)
CLEAN = math.inf  # the SNR of a condition without added noise
DEFAULT_MIN_FRAMES = 100  # the paper's "longer than 100 frames" subset


# =========================================================================== lengths


def read_num_frames(path: PathLike, samples_per_frame: Optional[int] = None) -> Dict[str, int]:
    """Frames per utterance from ``utt2num_frames`` (``uttid N``) or an ESPnet shape file.

    Shape files hold ``uttid T,H,W[,C]``: the first number is used.  Give
    ``samples_per_frame`` (640 at 16 kHz / 25 fps) when the file counts audio samples
    (e.g. ``speech_shape``); the count is then rounded to whole video frames.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoringInputError(f"frame count file {str(p)!r} does not exist")
    frames: Dict[str, int] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ScoringInputError(f"{p}:{lineno}: expected 'uttid N' or 'uttid T,H,W', got {line!r}")
        try:
            value = int(fields[1].split(",")[0])
        except ValueError:
            raise ScoringInputError(f"{p}:{lineno}: {fields[1]!r} is not a frame count") from None
        frames[fields[0]] = int(round(value / samples_per_frame)) if samples_per_frame else value
    if not frames:
        raise ScoringInputError(f"frame count file {str(p)!r} is empty")
    return frames


@dataclass(frozen=True)
class Bucket:
    """Input lengths ``lo <= n < hi`` (``<= hi`` for the last bucket)."""

    lo: int
    hi: int
    closed: bool = False  # whether ``hi`` itself belongs to the bucket

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}"

    def __contains__(self, n: int) -> bool:
        return self.lo <= n < self.hi or (self.closed and n == self.hi)


def make_buckets(lo: int = 50, hi: int = 600, step: int = 50) -> List[Bucket]:
    """The paper's buckets: 50-100, 100-150, ..., 550-600 frames."""
    if step <= 0 or hi <= lo or (hi - lo) % step:
        raise ValueError(f"need lo < hi with (hi - lo) a multiple of step; got {lo}, {hi}, {step}")
    edges = list(range(lo, hi + 1, step))
    return [Bucket(a, b, closed=(b == hi)) for a, b in zip(edges[:-1], edges[1:])]


def bucket_of(n_frames: int, buckets: Sequence[Bucket]) -> Optional[Bucket]:
    """The bucket holding ``n_frames``, or None when it is outside all buckets."""
    for b in buckets:
        if n_frames in b:
            return b
    return None


# =========================================================================== WER tables


@dataclass
class WerCell:
    """Error counts summed over a set of utterances."""

    counts: ErrorCounts = field(default_factory=ErrorCounts)
    n_utts: int = 0

    @property
    def wer(self) -> float:
        """Percent; NaN for a cell without reference words."""
        n = self.counts.n_ref
        return 100.0 * self.counts.errors / n if n else math.nan

    def add(self, counts: ErrorCounts) -> None:
        self.counts = self.counts + counts
        self.n_utts += 1


def utterance_counts(ref: Mapping[str, str], hyp: Mapping[str, str], missing_hyp: str = "error",
                     extra_hyp: str = "error") -> Tuple[Dict[str, ErrorCounts], List[str]]:
    """Word-level (C, S, D, I) per utterance, with sclite's alignment; plus notes.

    Hypotheses are matched to references as in scoring: missing or extra ids are an error
    unless ``missing_hyp="empty"`` / ``extra_hyp="ignore"``.
    """
    matched = match_hypotheses(ref, hyp, missing_hyp, extra_hyp)
    counts = {u: count_errors(matched.ref[u].split(), matched.hyp[u].split()) for u in matched.ids}
    return counts, matched.notes


def _require_frames(ids: Iterable[str], frames: Mapping[str, int], what: str) -> None:
    missing = [u for u in ids if u not in frames]
    if missing:
        raise ScoringInputError(f"{what}: no frame count for {len(missing)} utterances: {_name_ids(missing)}")


@dataclass
class LengthTable:
    """WER per length bucket, per condition (modality / decoding method)."""

    buckets: List[Bucket]
    conditions: List[str]
    cells: Dict[Tuple[str, str], WerCell]  # (condition, bucket label) -> cell
    total: Dict[str, WerCell]  # per condition, all in-range utterances
    n_outside: Dict[str, int]  # per condition, utterances outside every bucket
    notes: List[str] = field(default_factory=list)

    def wer(self, condition: str, bucket: Bucket) -> float:
        return self.cells[(condition, bucket.label)].wer


def wer_by_length(ref: Mapping[str, str], hyps: Mapping[str, Mapping[str, str]], frames: Mapping[str, int],
                  buckets: Optional[Sequence[Bucket]] = None, missing_hyp: str = "error",
                  extra_hyp: str = "error") -> LengthTable:
    """Bucket every condition's utterances by length and compute WER per bucket."""
    buckets = list(buckets) if buckets is not None else make_buckets()
    cells, total, outside, notes = {}, {}, {}, []
    for cond, hyp in hyps.items():
        counts, cond_notes = utterance_counts(ref, hyp, missing_hyp, extra_hyp)
        notes += [f"{cond}: {n}" for n in cond_notes]
        _require_frames(counts, frames, f"condition {cond!r}")
        total[cond] = WerCell()
        outside[cond] = 0
        for b in buckets:
            cells[(cond, b.label)] = WerCell()
        for uid, c in counts.items():
            b = bucket_of(frames[uid], buckets)
            if b is None:
                outside[cond] += 1
                continue
            cells[(cond, b.label)].add(c)
            total[cond].add(c)
    return LengthTable(buckets, list(hyps), cells, total, outside, notes)


def parse_snr(text: str) -> float:
    """``"10"``, ``"-5"``, ``"0.5"`` -> dB; ``"clean"`` / ``"inf"`` -> no added noise."""
    if text.strip().lower() in ("clean", "inf", "none"):
        return CLEAN
    return float(text)


def snr_label(snr: float) -> str:
    return "clean" if math.isinf(snr) else f"{snr:g}"


def condition_name(snr: float) -> str:
    """Directory-safe SNR label: ``10`` -> ``snr10``, ``-5`` -> ``snrm5``, clean -> ``clean``
    (the noise sweep's ``<work_dir>/decode/<condition>/`` and the comparison report read these)."""
    return "clean" if math.isinf(snr) else "snr" + snr_label(snr).replace("-", "m")


@dataclass
class NoiseTable:
    """WER per SNR, per condition, for each subset (all samples, longer than N frames)."""

    conditions: List[str]
    snrs: List[float]  # clean first, then decreasing SNR
    subsets: List[str]
    cells: Dict[Tuple[str, str, float], WerCell]  # (subset, condition, snr) -> cell
    notes: List[str] = field(default_factory=list)

    def wer(self, subset: str, condition: str, snr: float) -> float:
        cell = self.cells.get((subset, condition, snr))
        return cell.wer if cell is not None else math.nan


def subset_label(min_frames: int) -> str:
    return f"longer than {min_frames} frames"


def wer_by_snr(ref: Mapping[str, str], hyps: Mapping[Tuple[str, float], Mapping[str, str]],
               frames: Optional[Mapping[str, int]] = None, min_frames: int = DEFAULT_MIN_FRAMES,
               missing_hyp: str = "error", extra_hyp: str = "error") -> NoiseTable:
    """WER of every (condition, SNR) hypothesis set, for all samples and, given frame counts,
    for the samples longer than ``min_frames`` frames (strictly, as "longer than" says)."""
    subsets = ["all samples"] + ([subset_label(min_frames)] if frames is not None else [])
    cells: Dict[Tuple[str, str, float], WerCell] = {}
    notes: List[str] = []
    for (cond, snr), hyp in hyps.items():
        counts, cond_notes = utterance_counts(ref, hyp, missing_hyp, extra_hyp)
        notes += [f"{cond} @ {snr_label(snr)}: {n}" for n in cond_notes]
        if frames is not None:
            _require_frames(counts, frames, f"condition {cond!r} at SNR {snr_label(snr)}")
        for subset in subsets:
            cell = cells.setdefault((subset, cond, snr), WerCell())
            for uid, c in counts.items():
                if subset == subsets[0] or frames[uid] > min_frames:
                    cell.add(c)
    conditions = list(dict.fromkeys(c for c, _ in hyps))
    snrs = sorted({s for _, s in hyps}, reverse=True)
    return NoiseTable(conditions, snrs, subsets, cells, notes)


# =========================================================================== Markdown


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def length_markdown(table: LengthTable) -> str:
    """WER (%) per length bucket; ``#utts`` is per condition when the conditions differ."""
    conds = table.conditions
    same_counts = all(len({table.cells[(c, b.label)].n_utts for c in conds}) == 1 for b in table.buckets)
    lines = ["| frames (25 fps) | #utts | " + " | ".join(conds) + " |",
             "|---|---:|" + "---:|" * len(conds)]
    for b in table.buckets:
        cells = [table.cells[(c, b.label)] for c in conds]
        n = str(cells[0].n_utts) if same_counts else "/".join(str(x.n_utts) for x in cells)
        lines.append(f"| {b.label} | {n} | " + " | ".join(_fmt(x.wer) for x in cells) + " |")
    totals = [table.total[c] for c in conds]
    n = str(totals[0].n_utts) if same_counts else "/".join(str(x.n_utts) for x in totals)
    lines.append(f"| **all {table.buckets[0].lo}-{table.buckets[-1].hi}** | {n} | "
                 + " | ".join(f"**{_fmt(x.wer)}**" for x in totals) + " |")
    outside = {table.n_outside[c] for c in conds}
    if outside != {0}:
        lines += ["", "Outside the buckets (not scored): "
                  + ", ".join(f"{c}: {table.n_outside[c]}" for c in conds) + " utterances."]
    return "\n".join(lines)


def noise_markdown(table: NoiseTable) -> str:
    """One table per subset: rows SNR, columns conditions, cells WER (%)."""
    out = []
    for subset in table.subsets:
        n_utts = {table.cells[k].n_utts for k in table.cells if k[0] == subset}
        n = f" ({n_utts.pop()} utterances)" if len(n_utts) == 1 else ""
        out += [f"**{subset}**{n}", "", "| SNR (dB) | " + " | ".join(table.conditions) + " |",
                "|---|" + "---:|" * len(table.conditions)]
        for snr in table.snrs:
            out.append(f"| {snr_label(snr)} | "
                       + " | ".join(_fmt(table.wer(subset, c, snr)) for c in table.conditions) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# =========================================================================== plots


def _pyplot():
    """matplotlib with the file-only Agg backend (no display on servers / CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: PathLike, legend_ax=None, legend_title: str = "", title: str = "",
                legend_width: float = 0.14) -> Path:
    """Write ``fig`` to ``path`` (parents created) and close it; with ``legend_ax``, one figure
    legend of that axes' lines at the right (outside the panels, where it hides no point) and
    ``title`` over all panels."""
    plt = _pyplot()
    if legend_ax is not None:
        handles, labels = legend_ax.get_legend_handles_labels()
        fig.legend(handles, labels, title=legend_title, loc="center right")
        fig.suptitle(title)
        fig.tight_layout(rect=(0.0, 0.0, 1.0 - legend_width, 1.0))
    else:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_wer_vs_length(table: LengthTable, path: PathLike, title: str = "WER vs input length") -> Path:
    """One line per condition over the length buckets; x ticks show the bucket sizes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.5), dpi=120)
    x = np.arange(len(table.buckets))
    for cond in table.conditions:
        ax.plot(x, [table.wer(cond, b) for b in table.buckets], marker="o", linewidth=1.8, label=cond)
    first = table.conditions[0]
    ax.set_xticks(x, [f"{b.label}\n(n={table.cells[(first, b.label)].n_utts})" for b in table.buckets],
                  fontsize=8)
    ax.set_xlabel("input length (video frames at 25 fps)")
    ax.set_ylabel("WER (%)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    # outside the axes: a legend inside would hide points of some line sooner or later
    ax.legend(title="modality / decoding", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_wer_vs_snr(table: NoiseTable, path: PathLike, title: str = "WER vs SNR (babble noise)") -> Path:
    """One panel per subset, one line per condition; 'clean' sits right of the highest SNR."""
    plt = _pyplot()
    noisy = sorted(s for s in table.snrs if not math.isinf(s))
    has_clean = any(math.isinf(s) for s in table.snrs)
    if noisy:
        step = (noisy[-1] - noisy[0]) / max(len(noisy) - 1, 1) or 5.0
        clean_x = noisy[-1] + step
    else:
        clean_x = 0.0
    order = noisy + ([CLEAN] if has_clean else [])
    xs = [clean_x if math.isinf(s) else s for s in order]
    fig, axes = plt.subplots(1, len(table.subsets), figsize=(5.5 * len(table.subsets) + 2.0, 4.5), dpi=120,
                             sharey=True, squeeze=False)
    for ax, subset in zip(axes[0], table.subsets):
        for cond in table.conditions:
            ax.plot(xs, [table.wer(subset, cond, s) for s in order], marker="o", linewidth=1.8, label=cond)
        ax.set_xticks(xs, [snr_label(s) for s in order])
        ax.set_xlabel("SNR (dB)")
        ax.set_title(subset)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("WER (%)")
    return save_figure(fig, path, axes[0][0], "modality / decoding", title)


# =========================================================================== noise mixing


def stable_seed(*parts: object) -> int:
    """A seed from values (e.g. user seed and utterance id) that is the same in every run.

    Python's ``hash`` of a string changes between processes, so it cannot be used.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def fit_to_length(noise: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """``length`` samples of ``noise`` starting at ``offset``, wrapping around (looping) as needed."""
    if noise.ndim != 1 or noise.size == 0:
        raise ValueError("noise must be a non-empty 1-D array")
    return np.take(noise, offset + np.arange(length), mode="wrap")


def signal_power(x: np.ndarray) -> float:
    """Mean square, in float64 (float32 sums lose precision over long signals)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` chosen so that 10 log10(P_speech / P_scaled_noise) = ``snr_db``.

    ``noise`` must already have the speech's length (see :func:`fit_to_length`).  Powers are
    taken over the whole utterance.  The result keeps the speech's float dtype and is not
    clipped (clipping would change the SNR; :func:`write_noisy_wav_scp` rescales instead).
    """
    speech = np.asarray(speech)
    noise = np.asarray(noise)
    if speech.shape != noise.shape or speech.ndim != 1:
        raise ValueError(f"speech and noise must be 1-D arrays of one length, got {speech.shape} and {noise.shape}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    p_speech, p_noise = signal_power(speech), signal_power(noise)
    if p_speech == 0.0:
        raise ValueError("the speech is silent: an SNR is undefined")
    if p_noise == 0.0:
        raise ValueError("the noise is silent: it cannot be scaled to an SNR")
    gain = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    out_dtype = speech.dtype if np.issubdtype(speech.dtype, np.floating) else np.float32
    return (speech.astype(np.float64) + gain * noise.astype(np.float64)).astype(out_dtype)


def read_wav(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform; multi-channel files are averaged, other rates refused."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz (resample it first)")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def read_wav_scp(path: PathLike) -> Dict[str, str]:
    """``uttid /path/to.wav`` lines (plain paths; Kaldi pipe commands are not supported)."""
    entries = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or fields[1].rstrip().endswith("|"):
            raise ScoringInputError(f"{path}:{lineno}: expected 'uttid /path/to.wav', got {line!r}")
        entries[fields[0]] = fields[1].strip()
    if not entries:
        raise ScoringInputError(f"wav.scp {str(path)!r} is empty")
    return entries


class NoiseSource:
    """Gives the noise to add to one utterance: ``source(uttid, length) -> array``."""

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        raise NotImplementedError


class FileNoise(NoiseSource):
    """Noise from one file (e.g. a babble recording), looped or cropped to each utterance.

    The start offset depends only on ``seed`` and the utterance id, so reruns and different
    SNRs use the same noise segment for an utterance.
    """

    def __init__(self, noise: Union[PathLike, np.ndarray], seed: int = 0):
        self.noise = read_wav(noise) if not isinstance(noise, np.ndarray) else np.asarray(noise, np.float32)
        if self.noise.ndim != 1 or self.noise.size == 0 or signal_power(self.noise) == 0.0:
            raise ValueError("the noise must be a non-empty, non-silent mono signal")
        self.seed = seed

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        offset = stable_seed("file-noise", self.seed, uttid) % self.noise.size
        return fit_to_length(self.noise, length, offset)


class CorpusBabble(NoiseSource):
    """Babble made by summing ``n_talkers`` other utterances of the corpus.

    For each target utterance a seeded generator (seed + utterance id) picks the talkers
    (never the target itself) and a start offset in each; every talker is looped or cropped
    to the target's length and scaled to unit power before summing, so no single loud
    recording dominates.  30 talkers by default, the count of AV-HuBERT's LRS3 babble
    recipe; that recipe instead makes one fixed babble file (see :func:`make_babble_noise`,
    then use it through :class:`FileNoise`).
    """

    def __init__(self, pool: Mapping[str, PathLike], n_talkers: int = 30, seed: int = 0,
                 loader=read_wav, cache_size: int = 256):
        if n_talkers < 1:
            raise ValueError("n_talkers must be at least 1")
        if len(pool) < 2:
            raise ValueError("babble needs at least two utterances in the pool")
        self.ids = sorted(pool)
        self.pool = dict(pool)
        self.n_talkers = n_talkers
        self.seed = seed
        self._load = lru_cache(maxsize=cache_size)(lambda uid: loader(self.pool[uid]))

    def talkers_for(self, uttid: str) -> List[str]:
        """The utterances mixed into ``uttid``'s babble (deterministic)."""
        others = [u for u in self.ids if u != uttid]
        if len(others) < self.n_talkers:
            log.warning("babble for %s: only %d other utterances, fewer than n_talkers=%d",
                        uttid, len(others), self.n_talkers)
        rng = np.random.default_rng(stable_seed("babble-talkers", self.seed, uttid))
        picked = rng.choice(len(others), size=min(self.n_talkers, len(others)), replace=False)
        return [others[i] for i in sorted(picked)]

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        rng = np.random.default_rng(stable_seed("babble-offsets", self.seed, uttid))
        babble = np.zeros(length, dtype=np.float64)
        used = 0
        for talker in self.talkers_for(uttid):
            wav = self._load(talker)
            power = signal_power(wav)
            if wav.size == 0 or power == 0.0:
                continue  # a silent recording adds nothing but would divide by zero
            babble += fit_to_length(wav, length, int(rng.integers(wav.size))) / math.sqrt(power)
            used += 1
        if used == 0:
            raise ValueError(f"babble for {uttid}: every chosen talker is silent")
        return babble.astype(np.float32)


def make_babble_noise(pool: Mapping[str, PathLike], n_talkers: int = 30, min_seconds: float = 15.0,
                      seed: int = 0, loader=read_wav) -> np.ndarray:
    """One fixed babble signal from ``n_talkers`` utterances at least ``min_seconds`` long.

    The seeded choice of talkers is cropped to the shortest of them, each scaled to unit
    power, and averaged -- the shape of AV-HuBERT's LRS3 babble preparation (30 training
    utterances over 15 s).  Use the result with :class:`FileNoise` for every test utterance.
    ``pool`` maps utterance ids to wav paths; lengths are read from the files.
    """
    import soundfile as sf

    long_enough = sorted(u for u, p in pool.items() if sf.info(str(p)).frames >= min_seconds * SAMPLE_RATE)
    if len(long_enough) < n_talkers:
        raise ValueError(f"only {len(long_enough)} utterances are at least {min_seconds} s long; "
                         f"{n_talkers} are needed (lower min_seconds or n_talkers)")
    rng = np.random.default_rng(stable_seed("babble-file", seed))
    chosen = [long_enough[i] for i in sorted(rng.choice(len(long_enough), size=n_talkers, replace=False))]
    wavs = [loader(pool[u]) for u in chosen]
    length = min(w.size for w in wavs)
    mix = np.zeros(length, dtype=np.float64)
    for w in wavs:
        power = signal_power(w[:length])
        if power > 0.0:
            mix += w[:length] / math.sqrt(power)
    return (mix / n_talkers).astype(np.float32)


def add_noise(uttid: str, speech: np.ndarray, snr_db: float, source: NoiseSource) -> np.ndarray:
    """Noisy version of one utterance: ``source``'s noise mixed in at ``snr_db``."""
    return mix_at_snr(speech, source(uttid, len(speech)), snr_db)


def write_noisy_wav_scp(wav_scp: PathLike, out_dir: PathLike, snr_db: float, source: NoiseSource,
                        subtype: str = "PCM_16") -> Path:
    """Write noisy copies of every utterance of ``wav_scp`` to ``out_dir/wav/`` plus a new
    ``out_dir/wav.scp``, for decoding the noisy condition.

    A mixture whose peak exceeds full scale is scaled down as a whole (speech and noise
    together, so the SNR is unchanged) instead of being clipped; how often that happened is
    logged.
    """
    import soundfile as sf

    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    lines, rescaled = [], 0
    for uid, wav_path in read_wav_scp(wav_scp).items():
        noisy = add_noise(uid, read_wav(wav_path), snr_db, source)
        peak = float(np.max(np.abs(noisy))) if noisy.size else 0.0
        if peak > 0.999:
            noisy = noisy * (0.999 / peak)
            rescaled += 1
        target = (out_dir / "wav" / f"{uid}.wav").resolve()
        sf.write(str(target), noisy, SAMPLE_RATE, subtype=subtype)
        lines.append(f"{uid} {target}\n")
    scp = out_dir / "wav.scp"
    scp.write_text("".join(lines), encoding="utf-8")
    if rescaled:
        log.info("%d of %d noisy utterances were scaled down to avoid clipping", rescaled, len(lines))
    return scp
