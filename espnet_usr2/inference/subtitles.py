"""Transcripts as files a person uses: plain text, SubRip (.srt), WebVTT (.vtt) and JSON.

Each takes timed pieces (``start_s``, ``end_s``, ``text``), as long-form transcription gives them
(:class:`espnet_usr2.inference.long_form.SegmentText`); pieces without text are left out of
subtitles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Protocol, Sequence

FORMATS = ("txt", "srt", "vtt", "json")


class TimedText(Protocol):
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def timestamp(seconds: float, decimal: str) -> str:
    """``HH:MM:SS<decimal>mmm`` (SRT uses ``,``, WebVTT ``.``)."""
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(pieces: Sequence[TimedText]) -> str:
    blocks = [
        f"{n}\n{timestamp(p.start_s, ',')} --> {timestamp(p.end_s, ',')}\n{p.text.strip()}\n"
        for n, p in enumerate((p for p in pieces if p.text.strip()), 1)
    ]
    return "\n".join(blocks)


def to_vtt(pieces: Sequence[TimedText]) -> str:
    blocks = [
        f"{timestamp(p.start_s, '.')} --> {timestamp(p.end_s, '.')}\n{p.text.strip()}\n"
        for p in pieces
        if p.text.strip()
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(text: str) -> str:
    return text.strip() + "\n"


def to_json(document: Dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def segment_records(pieces: Sequence[TimedText]) -> list:
    """The pieces as JSON records (times rounded to milliseconds)."""
    return [dict(start=round(p.start_s, 3), end=round(p.end_s, 3), text=p.text.strip()) for p in pieces]


def cues_from_records(records: Sequence[Dict[str, Any]]) -> List[Cue]:
    """:func:`segment_records` read back."""
    return [Cue(r["start"], r["end"], r["text"]) for r in records]
