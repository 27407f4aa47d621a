"""Why an utterance is skipped: one exception type carrying a short, stable reason code.

Every step of ROI preparation that finds bad input raises :class:`SkipUtterance`; the
shard runner catches it and writes ``uttid, path, reason, detail`` to the skip report.
Reason codes are fixed strings (they are counted in the summary and grepped by users);
the detail is free text for humans.
"""

from __future__ import annotations

# input list / transcript
INVALID_UTTID = "invalid_uttid"
MISSING_PATH = "missing_path"
DUPLICATE_UTTID = "duplicate_uttid"
MISSING_TRANSCRIPT = "missing_transcript"
EMPTY_TRANSCRIPT = "empty_transcript"
# the media file
FILE_NOT_FOUND = "file_not_found"
EMPTY_FILE = "empty_file"
UNREADABLE_VIDEO = "unreadable_video"
NO_VIDEO_STREAM = "no_video_stream"
DECODE_ERROR = "decode_error"
NO_VIDEO_FRAMES = "no_video_frames"
TRUNCATED_VIDEO = "truncated_video"
NO_AUDIO_STREAM = "no_audio_stream"
EMPTY_AUDIO = "empty_audio"
AV_LENGTH_MISMATCH = "av_length_mismatch"
DAMAGED_STREAM = "damaged_stream"  # concealed damage over --max_damaged_fraction of the clip
# landmarks
MISSING_LANDMARKS = "missing_landmarks"
UNREADABLE_LANDMARKS = "unreadable_landmarks"
LANDMARK_COUNT_MISMATCH = "landmark_count_mismatch"
NO_FACE = "no_face"
FACE_GAP_TOO_LONG = "face_gap_too_long"
# the run itself
WRITE_ERROR = "write_error"
INTERNAL_ERROR = "internal_error"
SHARD_MISSING = "shard_missing"
NOT_IN_ANY_SHARD = "not_in_any_shard"


class SkipUtterance(Exception):
    """Raised for an utterance that cannot be prepared; it goes to the skip report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
