"""Writer of the embedded mini corpus: a small generated corpus in LRS3's exact layout.

Layout (as LRS3)::

    <root>/pretrain/<speaker>/<clip>.mp4 + <clip>.txt      clips 00001, 00002, ...
    <root>/trainval/<speaker>/<clip>.mp4 + <clip>.txt      clips 50001, 50002, ...
    <root>/test/<speaker>/<clip>.mp4 + <clip>.txt          clips 00001, ... (unseen speakers)
    <root>/test_long/<speaker>/<clip>.mp4 + <clip>.txt     clips 90001, ... (not in LRS3)
    <root>/corpus_info.json                                 config, durations, vocabulary

``test_long`` holds a few utterances longer than any labelled clip (several sentences
in one breath), for the length-robustness check; it uses the test speakers and its own
clip numbers, so utterance ids never collide with ``test``.

Each ``.txt`` is LRS3's::

    Text:  PLEASE MOVE THE RED BOX
    Conf:  4

    WORD START END ASDSCORE
    PLEASE 0.27 0.55 6.1
    ...

with true word timings (seconds from the clip start) taken from the synthesiser (see
:mod:`espnet_usr2.prep.tts`). Each ``.mp4`` holds H.264 video (25 fps, square frames of
a talking face, see :mod:`espnet_usr2.prep.talking_face`) and 16 kHz mono AAC audio of
exactly ``frames x 640`` samples: clip lengths are rounded up (with trailing silence)
to a multiple of 5120 samples (0.32 s), the least common multiple of one video frame
(640 samples) and one AAC frame (1024), so that a decoder returns exactly that many
samples; the AAC encoder delay is cancelled by the mp4 edit list.

Sentences come from a small grammar over a vocabulary of 59 words (3-8 words by
default). Everything random is drawn from one seed: the plan (speakers, sentences,
per-clip seeds) is made up front in one process, so the output does not depend on the
number of worker processes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Collection, Iterable, Optional, Sequence

import cv2
import numpy as np

from espnet_usr2.prep.talking_face import FaceStyle, TalkingFace, head_motion, random_style
from espnet_usr2.prep.tts import SAMPLE_RATE, Utterance, Voice, synthesize

LOG = logging.getLogger(__name__)

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
#: clip lengths are multiples of this: lcm(640 samples per video frame, 1024 per AAC frame)
LENGTH_QUANTUM = 5120
SPLITS = ("pretrain", "trainval", "test")
LONG_SPLIT = "test_long"
#: first clip number per split (LRS3 numbers trainval clips from 50001)
CLIP_BASE = {"pretrain": 1, "trainval": 50001, "test": 1, LONG_SPLIT: 90001}
INFO_FILE = "corpus_info.json"
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------
# Vocabulary and grammar
# ---------------------------------------------------------------------------------
SUBJECTS = ("I", "WE", "YOU", "THEY")
VERBS = ("SEE", "MOVE", "PUSH", "FIND", "WANT", "LIKE", "KEEP", "BRING", "OPEN", "NEED")
DETERMINERS = ("THE", "A", "MY", "YOUR", "THIS")
NUMBERS = ("TWO", "THREE", "FOUR", "FIVE", "SEVEN", "NINE")
ADJECTIVES = ("RED", "BLUE", "GREEN", "BIG", "SMALL", "OLD", "WHITE", "YELLOW")
NOUNS = ("BOX", "CHAIR", "BOOK", "DOOR", "BALL", "CUP", "WATCH", "SHOE")
PLURALS = ("BOXES", "CHAIRS", "BOOKS", "DOORS", "BALLS", "CUPS", "WATCHES", "SHOES")
PREPOSITIONS = ("ON", "UNDER", "NEAR", "WITH")
ADVERBS = ("NOW", "AGAIN", "TODAY", "SLOWLY")
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        set(
            SUBJECTS
            + VERBS
            + DETERMINERS
            + NUMBERS
            + ADJECTIVES
            + NOUNS
            + PLURALS
            + PREPOSITIONS
            + ADVERBS
            + ("DON'T", "PLEASE")
        )
    )
)

#: espeak-ng voices (language + variant) speakers are drawn from; mostly US English,
#: a few British, all intelligible (checked with pocketsphinx during development)
VOICE_POOL = (
    "en-us",
    "en-us+m1",
    "en-us+m3",
    "en-us+m7",
    "en-us+f1",
    "en-us+f2",
    "en-us+f4",
    "en+m2",
    "en+f3",
    "en-gb-x-rp",
)


def _choice(rng: np.random.Generator, items: Sequence[str]) -> str:
    """One item, uniformly."""
    return items[int(rng.integers(len(items)))]


def _noun_phrase(rng: np.random.Generator) -> list[str]:
    """DET [ADJ] NOUN, or NUMBER [ADJ] PLURAL."""
    adj = [_choice(rng, ADJECTIVES)] if rng.random() < 0.55 else []
    if rng.random() < 0.3:
        return [_choice(rng, NUMBERS)] + adj + [_choice(rng, PLURALS)]
    return [_choice(rng, DETERMINERS)] + adj + [_choice(rng, NOUNS)]


def _sentence_candidate(rng: np.random.Generator) -> list[str]:
    """One sentence of the grammar (any length).

    S -> [PLEASE] VERB NP [PP] [ADV]            (a request)
       | SUBJ [DON'T] VERB NP [PP] [ADV]       (a statement)
    PP -> PREP DET [ADJ] NOUN
    """
    words: list[str] = []
    if rng.random() < 0.35:
        if rng.random() < 0.5:
            words.append("PLEASE")
    else:
        words.append(_choice(rng, SUBJECTS))
        if rng.random() < 0.25:
            words.append("DON'T")
    words.append(_choice(rng, VERBS))
    words += _noun_phrase(rng)
    if rng.random() < 0.4:
        adj = [_choice(rng, ADJECTIVES)] if rng.random() < 0.4 else []
        words += [_choice(rng, PREPOSITIONS), _choice(rng, DETERMINERS)] + adj + [_choice(rng, NOUNS)]
    if rng.random() < 0.35:
        words.append(_choice(rng, ADVERBS))
    return words


def make_sentence(rng: np.random.Generator, min_words: int = 3, max_words: int = 8) -> list[str]:
    """A grammatical sentence of ``min_words``..``max_words`` words (rejection sampling)."""
    if not 3 <= min_words <= max_words:
        raise ValueError("need 3 <= min_words <= max_words (shortest sentence: VERB DET NOUN)")
    for _ in range(10000):
        words = _sentence_candidate(rng)
        if min_words <= len(words) <= max_words:
            return words
    raise ValueError(f"grammar cannot make {min_words}-{max_words} word sentences")


def make_long_text(
    rng: np.random.Generator,
    min_words: int,
    max_words: int,
    sentence_words: tuple[int, int] = (3, 8),
    exclude: Collection[tuple[str, ...]] = (),
) -> list[str]:
    """Several sentences run together: ``min_words`` words or more.

    Sentences of ``sentence_words`` words (none of ``exclude``) are added until the target (drawn
    in [min_words, max_words]) is reached, so the result may exceed it by a sentence less one word.
    """
    target = int(rng.integers(min_words, max_words + 1))
    words: list[str] = []
    while len(words) < target:
        sentence = make_sentence(rng, *sentence_words)
        if tuple(sentence) not in exclude:
            words += sentence
    return words


# ---------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusConfig:
    """What to generate. Defaults: a corpus a small model learns from in minutes."""

    seed: int = 0
    n_pretrain: int = 200
    n_trainval: int = 300  # mini recipe WER A/V/AV: 28.3/69.5/21.1 % with 200, 19.8/64.8/17.4 with 300
    n_test: int = 60
    n_long: int = 6
    n_speakers: int = 8  # shared by pretrain and trainval (as in LRS3)
    n_test_speakers: int = 3  # test speakers are unseen in training (as in LRS3)
    min_words: int = 3
    max_words: int = 8
    long_min_words: int = 24
    long_max_words: int = 32
    size: int = 192  # square frame side in pixels
    crf: int = 23  # H.264 quality (lower = better, bigger)
    # unlabelled clips longer than any labelled one, as LRS3's pretrain set and VoxCeleb2 are
    # longer than LRS3's trainval: this share of pretrain/ becomes several sentences run together
    # (drawn apart from everything else, so the other splits stay as they are without it)
    pretrain_long_share: float = 0.0
    pretrain_long_min_words: int = 9
    pretrain_long_max_words: int = 20

    def check(self) -> None:
        """Raise ``ValueError`` on inconsistent sizes."""
        counts = (self.n_pretrain, self.n_trainval, self.n_test, self.n_long)
        if min(counts) < 0:
            raise ValueError("clip counts must be >= 0")
        if self.n_speakers < 1 or self.n_test_speakers < 1:
            raise ValueError("need at least one training and one test speaker")
        if self.long_min_words <= self.max_words or self.long_max_words < self.long_min_words:
            raise ValueError("long utterances need long_max_words >= long_min_words > max_words")
        if not 0.0 <= self.pretrain_long_share <= 1.0:
            raise ValueError("pretrain_long_share must be in [0, 1]")
        if (
            self.pretrain_long_min_words <= self.max_words
            or self.pretrain_long_max_words < self.pretrain_long_min_words
        ):
            raise ValueError("long pretrain clips need pretrain_long_max_words >= pretrain_long_min_words > max_words")
        if self.size % 2 or self.size < 64:
            raise ValueError("size must be even and >= 64")


@dataclass(frozen=True)
class Speaker:
    """A generated speaker: an LRS3-like 11-character id, a voice and a look."""

    id: str
    voice: Voice
    style: FaceStyle


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip, independent of the other clips."""

    split: str
    speaker: Speaker
    clip: str
    words: tuple[str, ...]
    seed: int
    size: int = 192
    crf: int = 23

    @property
    def relpath(self) -> str:
        """``<split>/<speaker>/<clip>`` without extension."""
        return f"{self.split}/{self.speaker.id}/{self.clip}"


_ID_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_CHARS = _ID_FIRST + "-_"


def _speaker_id(rng: np.random.Generator, taken: set[str]) -> str:
    """A YouTube-like id (as LRS3 directory names); '-' and '_' never come first."""
    while True:
        sid = _choice(rng, _ID_FIRST) + "".join(_choice(rng, _ID_CHARS) for _ in range(10))
        if sid not in taken:
            taken.add(sid)
            return sid


def _make_speaker(rng: np.random.Generator, voice_name: str, taken: set[str]) -> Speaker:
    """Draw a speaker's prosody and look around a given espeak-ng voice."""
    voice = Voice(
        name=voice_name,
        rate=int(rng.integers(140, 186)),
        pitch=int(rng.integers(35, 66)),
        pitch_range=int(rng.integers(35, 76)),
    )
    return Speaker(_speaker_id(rng, taken), voice, random_style(rng))


def make_speakers(cfg: CorpusConfig, rng: np.random.Generator) -> tuple[list[Speaker], list[Speaker]]:
    """Training speakers (distinct voices while the pool lasts) and test speakers.

    Test speakers reuse voices heard in training, with their own prosody and look: new
    people for the model, but not a voice timbre it has never heard.
    """
    taken: set[str] = set()
    order = [VOICE_POOL[i] for i in rng.permutation(len(VOICE_POOL))]
    train = [_make_speaker(rng, order[i % len(order)], taken) for i in range(cfg.n_speakers)]
    heard = [s.voice.name for s in train]
    test = [_make_speaker(rng, _choice(rng, heard), taken) for _ in range(cfg.n_test_speakers)]
    return train, test


def _spread(n_clips: int, speakers: Sequence[Speaker]) -> list[Speaker]:
    """Assign clips to speakers round-robin (each gets n/len or n/len + 1 clips)."""
    return [speakers[i % len(speakers)] for i in range(n_clips)]


def plan_corpus(cfg: CorpusConfig) -> list[ClipSpec]:
    """All clips of the corpus, deterministically from ``cfg.seed``.

    Test sentences never repeat a training sentence, so test scores measure
    recognition, not recall.
    """
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    train_spk, test_spk = make_speakers(cfg, rng)
    specs: list[ClipSpec] = []
    seen: set[tuple[str, ...]] = set()
    counts = {"pretrain": cfg.n_pretrain, "trainval": cfg.n_trainval, "test": cfg.n_test}
    for split in SPLITS:
        speakers = test_spk if split == "test" else train_spk
        next_clip = {s.id: CLIP_BASE[split] for s in speakers}
        for spk in _spread(counts[split], speakers):
            words = tuple(make_sentence(rng, cfg.min_words, cfg.max_words))
            while split == "test" and words in seen:
                words = tuple(make_sentence(rng, cfg.min_words, cfg.max_words))
            if split != "test":
                seen.add(words)
            specs.append(_spec(split, spk, next_clip, words, rng, cfg))
    next_clip = {s.id: CLIP_BASE[LONG_SPLIT] for s in test_spk}
    for spk in _spread(cfg.n_long, test_spk):
        words = tuple(make_long_text(rng, cfg.long_min_words, cfg.long_max_words))
        specs.append(_spec(LONG_SPLIT, spk, next_clip, words, rng, cfg))
    return _lengthen_pretrain(specs, cfg) if cfg.pretrain_long_share > 0 else specs


def _lengthen_pretrain(specs: list[ClipSpec], cfg: CorpusConfig) -> list[ClipSpec]:
    """A ``pretrain_long_share`` of the pretrain clips re-worded as several sentences run together.

    Drawn from a generator of its own (seeded from ``cfg.seed``), after the whole plan, so every
    other clip is what it is without this option; no test sentence is among the new ones (the
    model would hear test sentences in its unlabelled data otherwise)."""
    rng = np.random.default_rng([cfg.seed, 1])
    test_sentences = {spec.words for spec in specs if spec.split == "test"}
    out = []
    for spec in specs:
        if spec.split == "pretrain" and rng.random() < cfg.pretrain_long_share:
            words = make_long_text(
                rng,
                cfg.pretrain_long_min_words,
                cfg.pretrain_long_max_words,
                (cfg.min_words, cfg.max_words),
                test_sentences,
            )
            spec = replace(spec, words=tuple(words))
        out.append(spec)
    return out


def _spec(
    split: str,
    spk: Speaker,
    next_clip: dict[str, int],
    words: tuple[str, ...],
    rng: np.random.Generator,
    cfg: CorpusConfig,
) -> ClipSpec:
    """Make one clip spec and advance the speaker's clip counter."""
    clip = f"{next_clip[spk.id]:05d}"
    next_clip[spk.id] += 1
    seed = int(rng.integers(2**63 - 1))
    return ClipSpec(split, spk, clip, words, seed, cfg.size, cfg.crf)


# ---------------------------------------------------------------------------------
# Rendering one clip
# ---------------------------------------------------------------------------------
@dataclass
class ClipResult:
    """What was written for one clip."""

    relpath: str
    n_frames: int
    n_samples: int
    n_words: int

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.n_samples / SAMPLE_RATE


@dataclass
class ClipAudio:
    """A clip's padded waveform and its speech timings relative to the clip start."""

    waveform: np.ndarray
    speech: Utterance = field(repr=False)

    @property
    def n_frames(self) -> int:
        """Number of 25 fps video frames (waveform is a multiple of 640 samples)."""
        return len(self.waveform) // SAMPLES_PER_FRAME


def make_clip_audio(spec: ClipSpec, rng: np.random.Generator) -> ClipAudio:
    """Speak the clip's words with per-clip prosody jitter, then pad and add noise.

    Silence before (0.15-0.4 s) and after the speech lets the face rest at both ends;
    the trailing pad also rounds the length up to :data:`LENGTH_QUANTUM`. A faint
    noise floor (35-50 dB below the speech) keeps log-mel features finite.
    """
    base = spec.speaker.voice
    voice = Voice(
        name=base.name,
        rate=int(round(base.rate * rng.uniform(0.92, 1.08))),
        pitch=int(np.clip(base.pitch + rng.integers(-5, 6), 0, 100)),
        pitch_range=base.pitch_range,
        word_gap=int(rng.choice([0, 0, 1, 2, 3])),  # extra 0-30 ms between words
    )
    utt = synthesize(list(spec.words), voice)
    speech = utt.waveform / max(float(np.abs(utt.waveform).max()), 1e-6)
    speech *= rng.uniform(0.45, 0.85)
    lead = int(rng.uniform(0.15, 0.4) * SAMPLE_RATE)
    trail_min = int(rng.uniform(0.15, 0.4) * SAMPLE_RATE)
    needed = lead + len(speech) + trail_min
    total = -(-needed // LENGTH_QUANTUM) * LENGTH_QUANTUM
    wave = np.zeros(total, np.float32)
    wave[lead : lead + len(speech)] = speech
    rms = float(np.sqrt(np.mean(speech**2)))
    noise_db = rng.uniform(35.0, 50.0)
    wave += rng.normal(0.0, rms * 10 ** (-noise_db / 20), total).astype(np.float32)
    return ClipAudio(np.clip(wave, -1, 1), utt.shifted(lead / SAMPLE_RATE))


def lrs3_text(
    words: Sequence[str], timings: Sequence[tuple[float, float]], asd_scores: Sequence[float], conf: int = 4
) -> str:
    """The content of an LRS3 ``.txt`` file (two spaces after ``Text:``/``Conf:``)."""
    lines = [f"Text:  {' '.join(words)}", f"Conf:  {conf}", "", "WORD START END ASDSCORE"]
    for word, (start, end), score in zip(words, timings, asd_scores):
        lines.append(f"{word} {start:.2f} {end:.2f} {score:.1f}")
    return "\n".join(lines) + "\n"


def _rounded_timings(utt: Utterance, duration: float) -> list[tuple[float, float]]:
    """Word spans rounded to LRS3's 10 ms, kept ordered, non-empty and inside the clip."""
    out: list[tuple[float, float]] = []
    prev_end = 0.0
    for w in utt.words:
        start = max(round(w.start, 2), prev_end)
        end = min(max(round(w.end, 2), start + 0.01), np.floor(duration * 100) / 100)
        if end <= start:
            raise ValueError(f"word {w.word!r} has no duration left after rounding")
        out.append((start, end))
        prev_end = end
    return out


def _phone_list(utt: Utterance) -> list[tuple[str, float, float]]:
    """All phones of an utterance as (symbol, start, end)."""
    return [(p.symbol, p.start, p.end) for w in utt.words for p in w.phones]


def write_mp4(path: Path, frames: Iterable[np.ndarray], waveform: np.ndarray, size: int, crf: int = 23) -> None:
    """Mux RGB frames (25 fps, H.264) and a 16 kHz mono waveform (AAC) into an mp4.

    Same input, same bytes. x264's adaptive B-frame decision (PyAV 18's libx264, preset
    veryfast) reads memory it has not initialised: identical frames encoded twice came
    out different, and changed with glibc's MALLOC_PERTURB_. Without B-frames
    (``bframes=0``, about 30 % more bytes) the output is reproducible run to run and
    across processes; as a bonus, decode order is display order. One encoder thread:
    parallelism comes from the process pool.

    The audio frame gets pts 0, so the AAC encoder's priming samples get negative
    timestamps, which the mp4 muxer turns into an edit list: decoders drop them and
    the audio stays in sync with the video.
    """
    import av  # local import: only writing needs PyAV

    with av.open(str(path), "w", format="mp4") as container:
        vstream = container.add_stream(
            "libx264",
            rate=FPS,
            options={"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "bframes=0"},
        )
        vstream.width = vstream.height = size
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        astream.bit_rate = 48000
        for k, frame in enumerate(frames):
            # RGB -> I420 with OpenCV: the same BT.601 limited-range matrix as swscale's.
            yuv = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
            vframe = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            vframe.pts = k
            vframe.time_base = Fraction(1, FPS)
            for packet in vstream.encode(vframe):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        pcm = np.round(np.clip(waveform, -1, 1) * 32767).astype(np.int16)[None]
        aframe = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        aframe.sample_rate = SAMPLE_RATE
        aframe.pts = 0
        aframe.time_base = Fraction(1, SAMPLE_RATE)
        for packet in list(astream.encode(aframe)) + list(astream.encode(None)):
            container.mux(packet)


_FACES: dict[tuple[FaceStyle, int], TalkingFace] = {}


def _face(style: FaceStyle, size: int) -> TalkingFace:
    """Per-process cache of renderers (one per speaker look)."""
    key = (style, size)
    if key not in _FACES:
        _FACES[key] = TalkingFace(style, size)
    return _FACES[key]


def render_clip(spec: ClipSpec, root: Path) -> ClipResult:
    """Write ``<root>/<split>/<speaker>/<clip>.{mp4,txt}`` for one clip.

    Files are written under temporary names and renamed, so an interrupted run never
    leaves a truncated clip behind.
    """
    rng = np.random.default_rng(spec.seed)
    audio = make_clip_audio(spec, rng)
    n_frames = audio.n_frames
    duration = len(audio.waveform) / SAMPLE_RATE
    face = _face(spec.speaker.style, spec.size)
    poses = head_motion(n_frames, rng)
    frames = face.animate(_phone_list(audio.speech), n_frames, FPS, poses)
    base = root / spec.relpath
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp_mp4 = base.with_name(base.name + ".mp4.partial")
    write_mp4(tmp_mp4, frames, audio.waveform, spec.size, spec.crf)
    timings = _rounded_timings(audio.speech, duration)
    scores = np.round(rng.uniform(2.0, 9.0, size=len(spec.words)), 1)
    tmp_txt = base.with_name(base.name + ".txt.partial")
    tmp_txt.write_text(lrs3_text(spec.words, timings, scores))
    os.replace(tmp_mp4, base.with_suffix(".mp4"))
    os.replace(tmp_txt, base.with_suffix(".txt"))
    return ClipResult(spec.relpath, n_frames, len(audio.waveform), len(spec.words))


# ---------------------------------------------------------------------------------
# The whole corpus
# ---------------------------------------------------------------------------------
def _render_star(args: tuple[ClipSpec, Path]) -> ClipResult:
    """Pool helper (top-level, so it pickles)."""
    return render_clip(*args)


def _summary(results: Sequence[ClipResult]) -> dict[str, dict[str, float]]:
    """Per-split clip count and duration statistics."""
    out: dict[str, dict[str, float]] = {}
    for split in SPLITS + (LONG_SPLIT,):
        durs = [r.duration for r in results if r.relpath.startswith(split + "/")]
        if durs:
            out[split] = {
                "clips": len(durs),
                "hours": round(sum(durs) / 3600, 4),
                "min_s": round(min(durs), 2),
                "max_s": round(max(durs), 2),
            }
    return out


def existing_config(root: Path) -> Optional[dict]:
    """The config recorded by a finished generation in ``root``, if any."""
    info = root / INFO_FILE
    if not info.is_file():
        return None
    return json.loads(info.read_text()).get("config")


def same_config(recorded: Optional[dict], cfg: CorpusConfig) -> bool:
    """Whether a recorded config is ``cfg``; a field it predates counts as its default value."""
    if recorded is None:
        return False
    defaults = asdict(CorpusConfig())
    return {**{k: v for k, v in defaults.items() if k not in recorded}, **recorded} == asdict(cfg)


def write_corpus(cfg: CorpusConfig, root: Path, nj: int = 1, overwrite: bool = False) -> dict:
    """Generate the corpus under ``root``; return the info written to corpus_info.json.

    A finished corpus with the same config is left as is (re-running a recipe stage is
    cheap). A different or unfinished one is an error unless ``overwrite``, which
    deletes only this generator's split directories and info file.
    """
    root = Path(root)
    if same_config(existing_config(root), cfg) and not overwrite:
        LOG.info("%s already holds this corpus; nothing to do", root)
        return json.loads((root / INFO_FILE).read_text())
    ours = [root / s for s in SPLITS + (LONG_SPLIT,)] + [root / INFO_FILE]
    if any(p.exists() for p in ours):
        if not overwrite:
            raise FileExistsError(f"{root} holds another or an unfinished corpus: pass overwrite (--overwrite)")
        for p in ours:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    specs = plan_corpus(cfg)
    jobs = [(spec, root) for spec in specs]
    results: list[ClipResult] = []
    if nj <= 1:
        for k, job in enumerate(jobs):
            results.append(_render_star(job))
            _progress(k + 1, len(jobs), start)
    else:
        with ProcessPoolExecutor(max_workers=nj) as pool:
            for k, res in enumerate(pool.map(_render_star, jobs, chunksize=4)):
                results.append(res)
                _progress(k + 1, len(jobs), start)
    elapsed = time.perf_counter() - start
    info = {
        "format": "mini_lrs3",
        "format_version": FORMAT_VERSION,
        "config": asdict(cfg),
        "layout": "<split>/<speaker>/<clip>.{mp4,txt} as LRS3",
        "splits": _summary(results),
        "long_split": LONG_SPLIT,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "vocabulary": list(VOCABULARY),
        "speakers": _speaker_table(specs),
        "generation_seconds": round(elapsed, 1),
        "nj": nj,
    }
    (root / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
    return info


def _speaker_table(specs: Sequence[ClipSpec]) -> dict[str, dict]:
    """Speaker id -> voice, look and the splits it speaks in."""
    table: dict[str, dict] = {}
    for spec in specs:
        entry = table.setdefault(
            spec.speaker.id,
            {"voice": asdict(spec.speaker.voice), "face": asdict(spec.speaker.style), "splits": []},
        )
        if spec.split not in entry["splits"]:
            entry["splits"].append(spec.split)
    return table


def _progress(done: int, total: int, start: float) -> None:
    """Log progress every 50 clips and at the end."""
    if done % 50 == 0 or done == total:
        LOG.info("%d/%d clips, %.1f s", done, total, time.perf_counter() - start)
