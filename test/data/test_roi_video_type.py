"""The roi_video data type: compact storage, float (T, H, W) loading, A/V length agreement."""

import numpy as np
import pytest
from espnet2.train.dataset import ESPnetDataset

from espnet_usr2.data.av_sync import AVLengthMismatchError, align_audio_to_video
from espnet_usr2.data.preprocessor import USR2Preprocessor
from espnet_usr2.data.roi_io import RoiFormatError, load_roi, save_roi
from espnet_usr2.data.roi_video_type import ROI_VIDEO_TYPE  # noqa: F401  (registers the type)


@pytest.mark.parametrize("suffix", [".mkv", ".npz", ".npy"])
def test_roi_roundtrip_is_lossless_uint8(tmp_path, suffix):
    frames = (np.random.default_rng(0).random((12, 96, 96)) * 255).astype(np.uint8)
    path = save_roi(tmp_path / f"clip{suffix}", frames)
    loaded = load_roi(path)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, frames)


def test_compressed_formats_are_smaller_than_float32(tmp_path):
    # a smooth image sequence, like a mouth crop
    yy, xx = np.mgrid[:96, :96]
    frames = np.stack([(128 + 60 * np.sin(xx / 9 + t / 4) * np.cos(yy / 11)).astype(np.uint8) for t in range(50)])
    float_bytes = frames.astype(np.float32).nbytes
    for suffix in (".mkv", ".npz"):
        size = save_roi(tmp_path / f"c{suffix}", frames).stat().st_size
        assert size < float_bytes / 8, f"{suffix}: {size} bytes vs {float_bytes} as float32"


def test_bad_roi_inputs_give_clear_errors(tmp_path):
    with pytest.raises(RoiFormatError, match="uint8"):
        save_roi(tmp_path / "x.npz", np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(RoiFormatError, match=r"\(T, H, W\)"):
        save_roi(tmp_path / "x.npz", np.zeros((3, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.mkv"):
        load_roi(tmp_path / "missing.mkv")
    (tmp_path / "broken.mkv").write_bytes(b"not a video")
    with pytest.raises(RoiFormatError, match="cannot decode"):
        load_roi(tmp_path / "broken.mkv")
    with pytest.raises(RoiFormatError, match="unknown ROI format"):
        load_roi(_touch(tmp_path / "x.gif"))


def _touch(path):
    path.write_bytes(b"")
    return path


def test_espnet_dataset_loads_roi_video_as_float_frames(token_list, write_toy_corpus, tmp_path):
    texts = write_toy_corpus(tmp_path, num_utts=4, roi_format="mkv")
    preprocess = USR2Preprocessor(train=False, token_type="char", token_list=token_list)
    dataset = ESPnetDataset(
        [
            (str(tmp_path / "wav.scp"), "speech", "sound"),
            (str(tmp_path / "video.scp"), "video", "roi_video"),
            (str(tmp_path / "text"), "text", "text"),
        ],
        preprocess=preprocess,
    )
    uid = sorted(texts)[0]
    _, data = dataset[uid]
    video, speech = data["video"], data["speech"]
    assert video.dtype == np.float32 and video.ndim == 3 and video.shape[1:] == (96, 96)
    assert 0 <= video.min() and video.max() <= 255 and video.max() > 1  # pixels, not [0, 1]
    assert len(speech) == 640 * len(video)
    assert [token_list[i] for i in data["text"]] == list(texts[uid])


def test_audio_is_trimmed_or_padded_to_640_samples_per_frame():
    speech = np.ones(10 * 640 + 300, dtype=np.float32)
    assert len(align_audio_to_video("u", speech, 10, 640, 2.0)) == 6400
    assert len(align_audio_to_video("u", speech[: 9 * 640], 10, 640, 2.0)) == 6400
    with pytest.raises(AVLengthMismatchError, match="utterance 'spk1-x'.*video has 20 frames"):
        align_audio_to_video("spk1-x", speech, 20, 640, 2.0)
