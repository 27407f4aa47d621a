"""Per-utterance preprocessing for USR2Task: tokenisation plus audio/video length agreement.

Text goes through ESPnet's :class:`CommonPreprocessor` (SentencePiece, characters or words,
as configured). Audio is trimmed or padded to exactly ``samples_per_frame`` samples per
video frame when both streams are present.
"""

from __future__ import annotations

from typing import Dict, Union

import numpy as np
from espnet2.train.preprocessor import CommonPreprocessor

from espnet_usr2.data.av_sync import align_audio_to_video


class USR2Preprocessor(CommonPreprocessor):
    def __init__(
        self,
        train: bool,
        samples_per_frame: int = 640,
        av_length_tolerance: float = 2.0,
        video_name: str = "video",
        **kwargs,
    ):
        super().__init__(train=train, **kwargs)
        self.samples_per_frame = samples_per_frame
        self.av_length_tolerance = av_length_tolerance
        self.video_name = video_name

    def __call__(self, uid: str, data: Dict[str, Union[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        if self.speech_name in data and self.video_name in data:
            speech = data[self.speech_name]
            if speech.ndim != 1:
                raise ValueError(f"utterance {uid!r}: expected mono audio, got shape {speech.shape}")
            data[self.speech_name] = align_audio_to_video(
                uid, speech, len(data[self.video_name]), self.samples_per_frame, self.av_length_tolerance
            )
        return super().__call__(uid, data)
