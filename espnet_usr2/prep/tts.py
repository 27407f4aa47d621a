"""Text-to-speech with true word and phoneme timings, via the espeak-ng C library.

Why the library and not the ``espeak-ng`` command: the library reports, through its
synthesis callback, a WORD event at the start of every word and a PHONEME event at the
start of every phoneme, each with the exact output sample index. That gives word
timings of continuous (coarticulated) speech straight from the synthesiser, with no
forced alignment and no word-by-word concatenation (a sentence takes a few ms, plus
about 15 ms for the fork described below). Checked against pocketsphinx's forced
alignment: word boundaries agree within 24 ms on average.

Timing rule: a phoneme lasts from its event to the next PHONEME event (pauses such as
``_`` and ``_:`` are events too, so a word ends where the following pause or word
begins). A word starts at its first phoneme and ends at the end of its last phoneme;
the first word starts no earlier than the first audible sample. espeak-ng speaks a
few pairs ("on the", "with the") as one word event; their phones are shared out in
proportion to each word's phoneme count when spoken alone.

The library is loaded with :mod:`ctypes` from Debian's ``libespeak-ng1`` (pulled in by
the ``espeak-ng`` package). espeak-ng keeps global state and is not thread-safe, so one
:class:`EspeakNG` exists per process (use processes, not threads, to parallelise), and
each utterance is synthesised in a short-lived forked child so that the output does
not depend on what the process said before (see :meth:`EspeakNG.synthesize`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 16000

# espeak-ng's public enums (speak_lib.h); the values are part of its stable C ABI.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),  # phoneme mnemonic, NUL-terminated unless 8 long
    ]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (40 bytes on LP64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset in the input
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index at the synthesiser's rate
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice and its prosody settings.

    name: voice and variant, e.g. ``"en-us+f3"``; rate: words per minute (80-450);
    pitch and pitch_range: 0-100; word_gap: extra pause between words, in 10 ms units.
    """

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0


@dataclass(frozen=True)
class Phone:
    """One phoneme (espeak-ng mnemonic, e.g. ``"aI"``) and its span in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class WordTiming:
    """One word of the input, its span in seconds and its phonemes."""

    word: str
    start: float
    end: float
    phones: tuple[Phone, ...]


@dataclass
class Utterance:
    """Synthesised speech: float32 mono waveform in [-1, 1] and its timings."""

    waveform: np.ndarray
    sample_rate: int
    words: list[WordTiming]

    @property
    def duration(self) -> float:
        """Length of the waveform in seconds."""
        return len(self.waveform) / self.sample_rate

    def shifted(self, offset_s: float) -> "Utterance":
        """Return the timings moved by ``offset_s`` seconds (waveform untouched)."""
        words = [
            WordTiming(
                w.word,
                w.start + offset_s,
                w.end + offset_s,
                tuple(Phone(p.symbol, p.start + offset_s, p.end + offset_s) for p in w.phones),
            )
            for w in self.words
        ]
        return Utterance(self.waveform, self.sample_rate, words)


def is_pause(symbol: str) -> bool:
    """True for espeak-ng's pause pseudo-phonemes (``_``, ``_:``, ``_!`` ...)."""
    return symbol.startswith("_")


def _load_library() -> ctypes.CDLL:
    """Open libespeak-ng, with an install hint when it is missing."""
    candidates = [ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1", "libespeak-ng.so"]
    for name in candidates:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RuntimeError(
        "libespeak-ng not found: install the Debian/Ubuntu package 'espeak-ng' "
        "(apt-get install espeak-ng), which brings libespeak-ng1"
    )


class EspeakNG:
    """In-process espeak-ng synthesiser returning 16 kHz audio plus timings.

    Use :func:`get_engine` rather than constructing this: espeak-ng has one global
    state per process, so a second instance would only re-initialise the same one.
    """

    def __init__(self) -> None:
        self._lib = _load_library()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
        self.native_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # (type, text_position, sample, phoneme symbol or "")
        self._events: list[tuple[int, int, int, str]] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._on_audio)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    def _on_audio(self, wav, n_samples: int, events) -> int:  # noqa: ANN001 (ctypes)
        """Collect audio and events; returning 0 tells espeak-ng to continue."""
        if n_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            symbol = ""
            if ev.type == _EVENT_PHONEME:
                symbol = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            self._events.append((ev.type, ev.text_position, ev.sample, symbol))
            i += 1
        return 0

    def _set_voice(self, voice: Voice) -> None:
        """Select the voice, then its prosody (selecting a voice resets prosody)."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}")
        for param, value in (
            (_PARAM_RATE, voice.rate),
            (_PARAM_PITCH, voice.pitch),
            (_PARAM_RANGE, voice.pitch_range),
            (_PARAM_WORDGAP, voice.word_gap),
            (_PARAM_VOLUME, 100),
        ):
            self._lib.espeak_SetParameter(param, int(value), 0)

    def _run(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, str]]]:
        """Synthesise ``text``; return native-rate int16 audio and the event list."""
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        err = self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events

    def _count_phones(self, word: str) -> int:
        """Number of phonemes of ``word`` spoken alone with the current voice."""
        _, events = self._run(word.lower())
        return sum(1 for e in events if e[0] == _EVENT_PHONEME and not is_pause(e[3]))

    def synthesize(self, words: Sequence[str], voice: Voice = Voice()) -> Utterance:
        """Speak ``words`` as one sentence; return 16 kHz audio and word/phone timings.

        Words are given to espeak-ng in lower case (upper case words risk being read
        as acronyms, letter by letter). Raises ``ValueError`` if a word gets no phoneme.

        The result depends only on ``words`` and ``voice``. espeak-ng carries internal
        state from one utterance to the next: the same sentence said twice in one
        process differed in waveform and by a few samples in length (re-initialising
        the library does not reset it). Each call therefore runs in a forked child of
        this process, which itself never synthesises and so always hands the child
        the same synthesiser state. Without ``os.fork`` (Windows) it runs here, and
        the audio is reproducible only up to those small differences.
        """
        if not words:
            raise ValueError("nothing to synthesise")
        if hasattr(os, "fork"):
            return _call_in_child(self._synthesize_here, words, voice)
        return self._synthesize_here(words, voice)

    def _synthesize_here(self, words: Sequence[str], voice: Voice) -> Utterance:
        """:meth:`synthesize` in this process (advances the synthesiser's state)."""
        text, starts = _join_words(words)
        with self._lock:
            self._set_voice(voice)
            audio, events = self._run(text.lower())
            timings = _word_timings(words, starts, events, len(audio), self.native_rate, self._count_phones)
        timings[0] = _trim_onset(timings[0], audio, self.native_rate)
        wave = resample_poly(audio.astype(np.float32) / 32768.0, SAMPLE_RATE, self.native_rate)
        return Utterance(np.clip(wave, -1.0, 1.0).astype(np.float32), SAMPLE_RATE, timings)


def _call_in_child(func: Callable[..., Utterance], *args: object) -> Utterance:
    """Run ``func(*args)`` in a forked child; return its result or raise its error.

    The child only runs espeak-ng and pickles the result into a pipe, then leaves with
    ``os._exit`` (no Python clean-up, no inherited atexit handlers or buffers flushed
    twice), which is what makes forking from a threaded parent safe enough here.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_fd)
            try:
                payload = ("ok", func(*args))
            except Exception as err:  # noqa: BLE001 (handed to the parent)
                payload = ("error", err)
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 (never return into the parent's code)
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            kind, value = pickle.load(pipe)
    except EOFError:
        kind, value = "error", RuntimeError("espeak-ng child process died")
    finally:
        os.waitpid(pid, 0)
    if kind == "error":
        raise value
    return value


def _join_words(words: Sequence[str]) -> tuple[str, list[int]]:
    """Join words with single spaces; return the text and each word's 1-based start."""
    starts, pos = [], 1
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ValueError(f"invalid word {w!r}")
        starts.append(pos)
        pos += len(w) + 1
    return " ".join(words), starts


def _word_timings(
    words: Sequence[str],
    starts: Sequence[int],
    events: Sequence[tuple[int, int, int, str]],
    n_samples: int,
    rate: int,
    count_phones: Callable[[str], int],
) -> list[WordTiming]:
    """Turn espeak-ng's WORD/PHONEME events into per-word spans with phones.

    Each phoneme belongs to the most recent WORD event; that event's text position
    says which input word it is (espeak-ng may report a word such as "don't" with a
    shorter length, but always at the word's first character).

    espeak-ng speaks a few word pairs as one unit with a single WORD event ("on the",
    "with the", "bring a" ...). The words of such a group share its phones in
    proportion to their phoneme counts when spoken alone (``count_phones``).
    """
    phone_events = _assign_phones(events, starts)
    # A phone ends where the next phoneme event (pause or not) begins.
    per_head: dict[int, list[Phone]] = {}
    for k, (sample, sym, owner) in enumerate(phone_events):
        end = phone_events[k + 1][0] if k + 1 < len(phone_events) else n_samples
        if owner is None or is_pause(sym) or end <= sample:
            continue
        per_head.setdefault(owner, []).append(Phone(sym, sample / rate, end / rate))
    heads = sorted(per_head)
    if not heads or heads[0] != 0:
        raise ValueError(f"espeak-ng produced no phoneme for {words[0]!r}")
    out: list[WordTiming] = []
    for h, nxt in zip(heads, heads[1:] + [len(words)]):
        group = list(words[h:nxt])
        parts = [per_head[h]] if len(group) == 1 else _split_phones(per_head[h], [count_phones(w) for w in group])
        for word, phones in zip(group, parts):
            out.append(WordTiming(word, phones[0].start, phones[-1].end, tuple(phones)))
    return out


def _split_phones(phones: Sequence[Phone], counts: Sequence[int]) -> list[list[Phone]]:
    """Cut ``phones`` into ``len(counts)`` non-empty runs sized like ``counts``."""
    n, k = len(phones), len(counts)
    if n < k:
        raise ValueError(f"{n} phones cannot be shared by {k} words")
    weights = np.maximum(np.asarray(counts, np.float64), 1.0)
    cuts = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    # Keep every run non-empty: cut i lies in [i + 1, n - (k - 1 - i)].
    cuts = [int(min(max(c, i + 1), n - (k - 1 - i))) for i, c in enumerate(cuts)]
    for i in range(1, len(cuts)):
        cuts[i] = max(cuts[i], cuts[i - 1] + 1)
    bounds = [0] + cuts + [n]
    return [list(phones[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _trim_onset(word: WordTiming, audio: np.ndarray, rate: int) -> WordTiming:
    """Start the first word where sound starts.

    espeak-ng opens every utterance with about 50 ms of silence, and for some initial
    phonemes (e.g. "j" of "you") reports the phoneme at sample 0, inside that silence.
    """
    if len(audio) == 0:
        return word
    level = np.abs(audio.astype(np.float32))
    loud = np.flatnonzero(level > 0.02 * max(float(level.max()), 1.0))
    if len(loud) == 0:
        return word
    onset = float(loud[0]) / rate
    first = word.phones[0]
    if not first.start < onset < first.end:
        return word
    phones = (Phone(first.symbol, onset, first.end),) + word.phones[1:]
    return WordTiming(word.word, onset, word.end, phones)


def _assign_phones(
    events: Sequence[tuple[int, int, int, str]], starts: Sequence[int]
) -> list[tuple[int, str, Optional[int]]]:
    """List phoneme events as (sample, symbol, index of owning word or None)."""
    owner: Optional[int] = None
    out: list[tuple[int, str, Optional[int]]] = []
    for etype, text_pos, sample, symbol in events:
        if etype == _EVENT_WORD:
            owner = _word_at(text_pos, starts)
        elif etype == _EVENT_PHONEME:
            out.append((sample, symbol, owner))
    return out


def _word_at(text_pos: int, starts: Sequence[int]) -> Optional[int]:
    """Index of the word whose text span contains 1-based ``text_pos``."""
    idx = None
    for i, s in enumerate(starts):
        if s <= text_pos:
            idx = i
        else:
            break
    return idx


_ENGINE: Optional[EspeakNG] = None


def get_engine() -> EspeakNG:
    """The process-wide espeak-ng engine (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = EspeakNG()
    return _ENGINE


def synthesize(words: Sequence[str], voice: Voice = Voice()) -> Utterance:
    """Convenience wrapper: :meth:`EspeakNG.synthesize` on the process engine."""
    return get_engine().synthesize(words, voice)
