"""Long-form transcription pieces: cutting at pauses, windows, joining, batching, subtitle files."""

import numpy as np
import pytest
import torch

from espnet_usr2.inference import long_form, subtitles
from espnet_usr2.inference.long_form import Segment, SegmentText

SPF = 640  # 16 kHz samples per 25 fps video frame


def test_a_recording_is_cut_at_its_pauses_with_times_near_the_speech(speech_with_pauses):
    spans = [(0.5, 3.0), (3.8, 7.5), (9.0, 10.2)]
    audio = speech_with_pauses(spans, 11.0)
    segments = long_form.plan_segments(len(audio) // SPF, audio, SPF, max_segment=5.0, min_silence=0.3)
    assert len(segments) == 3
    for seg, (start, end) in zip(segments, spans):
        assert abs(seg.start_s - start) < 0.25 and abs(seg.end_s - end) < 0.25, (seg, start, end)


def test_pauses_shorter_than_min_silence_do_not_cut(speech_with_pauses):
    audio = speech_with_pauses([(0.5, 2.0), (2.2, 4.0)], 5.0)  # a 0.2 s gap
    assert len(long_form.plan_segments(len(audio) // SPF, audio, SPF, max_segment=10.0, min_silence=0.3)) == 1
    audio = speech_with_pauses([(0.5, 2.0), (2.6, 4.0)], 5.0)  # a 0.6 s pause cuts, whatever max_segment
    assert len(long_form.plan_segments(len(audio) // SPF, audio, SPF, max_segment=10.0, min_silence=0.3)) == 2
    assert len(long_form.plan_segments(len(audio) // SPF, audio, SPF, max_segment=10.0, min_silence=0.8)) == 1


def test_speech_longer_than_max_segment_and_video_only_get_overlapping_windows(speech_with_pauses):
    audio = speech_with_pauses([(0.0, 12.0)], 12.0)
    segments = long_form.plan_segments(300, audio, SPF, max_segment=5.0, min_silence=0.3, overlap=1.0)
    assert all(s.frames <= 125 for s in segments) and segments[0].start <= 5 and segments[-1].end >= 295
    for before, after in zip(segments, segments[1:]):
        assert before.end - after.start == before.overlap_after == after.overlap_before == 25
        assert before.end_s == after.start_s  # times split the overlap in the middle
    video_only = long_form.plan_segments(300, None, SPF, max_segment=5.0, overlap=1.0)
    assert [(s.start, s.end) for s in video_only] == [(0, 125), (100, 225), (200, 300)]


def test_silence_only_gives_no_segment_and_an_empty_recording_none():
    quiet = 0.001 * np.random.default_rng(0).standard_normal(16000 * 4)
    assert long_form.plan_segments(100, quiet, SPF, max_segment=2.0) == []
    assert long_form.plan_segments(0, None, SPF) == []


@pytest.mark.parametrize(
    "before, after, joined",
    [
        ("the cat sat on", "sat on the mat", "the cat sat on the mat"),
        ("one two three", "three four", "one two three four"),
        ("one two", "five six", "one two five six"),  # no shared word: nothing dropped
        ("", "a b", "a b"),
    ],
)
def test_overlapping_windows_are_joined_where_their_words_agree(before, after, joined):
    assert long_form.join_overlapping(before, after) == joined


def test_join_texts_concatenates_pause_cuts_and_merges_windows():
    w1, w2 = Segment(0, 100, 0, 20), Segment(80, 180, 20, 0)
    assert long_form.join_texts([SegmentText(w1, "a b c"), SegmentText(w2, "c d")]) == "a b c d"
    p1, p2 = Segment(0, 50), Segment(60, 100)
    assert long_form.join_texts([SegmentText(p1, "a b"), SegmentText(p2, "b c")]) == "a b b c"


def test_segments_are_decoded_in_frame_budgeted_batches_and_returned_in_time_order():
    segments = [Segment(0, 50), Segment(60, 160), Segment(170, 200), Segment(210, 300)]
    batches = list(long_form.segment_batches(segments, batch_frames=200))
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    assert all(segments[b[0]].frames * len(b) <= 200 for b in batches)
    video = np.arange(300, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    audio = np.arange(300 * SPF, dtype=np.float32)
    seen = []

    def decode(batch):
        seen.append(batch["video_lengths"].tolist())
        assert torch.equal(batch["speech_lengths"], batch["video_lengths"] * SPF)
        return {"v": [(f"starts at {int(v[0, 0, 0])}", [str(int(v[0, 0, 0]))]) for v in batch["video"]]}

    out = long_form.transcribe_segments(decode, segments, video, audio, SPF, batch_frames=200)
    assert [t.text for t in out["v"]] == ["starts at 0", "starts at 60", "starts at 170", "starts at 210"]
    assert [t.tokens for t in out["v"]] == [("0",), ("60",), ("170",), ("210",)]


def test_subtitle_files():
    cues = [
        subtitles.Cue(0.5, 3.25, "hello there"),
        subtitles.Cue(3.8, 3661.5, "general kenobi"),
        subtitles.Cue(4.0, 5.0, "  "),
    ]
    assert subtitles.to_srt(cues) == (
        "1\n00:00:00,500 --> 00:00:03,250\nhello there\n\n2\n00:00:03,800 --> 01:01:01,500\ngeneral kenobi\n"
    )
    assert subtitles.to_vtt(cues) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:03.250\nhello there\n\n00:00:03.800 --> 01:01:01.500\ngeneral kenobi\n"
    )
    records = subtitles.segment_records(cues)
    assert subtitles.cues_from_records(records)[:2] == cues[:2]
