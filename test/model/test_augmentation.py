"""The student's time masks as USR's code draws them, and where a masked frame is zeroed."""

import pytest
import torch

from espnet_usr2.model.augmentation import StudentAugmentation, TimeMasks, time_mask
from espnet_usr2.tasks.config import build_model_from_config


def _expected_masked_steps_of_one_usr_mask(length: int, window: int) -> float:
    """E[masked steps] of one mask of USR's AdaptiveLengthTimeMask: offset t and width w uniform
    in 0 .. window - 1, skipped when t is 0 or not below the length, start uniform in
    0 .. length - t - 1, the span clipped at the end."""
    total = 0.0
    for t in range(1, min(window, length)):
        for w in range(window):
            total += sum(min(w, length - s) for s in range(length - t)) / (length - t)
    return total / window**2


@pytest.mark.parametrize("length", [12, 7])
def test_one_usr_mask_masks_what_usrs_code_masks_on_average(length):
    torch.manual_seed(0)
    draws = 20000
    masked = time_mask(torch.full((draws,), length), length + 3, window=10, stride=25, rule="usr")
    assert not masked[:, length:].any()  # never the padding
    mean = masked.sum(1).float().mean().item()
    assert abs(mean - _expected_masked_steps_of_one_usr_mask(length, 10)) < 0.1, mean


def test_usr_rule_masks_every_started_stride_and_the_floor_rule_only_whole_ones():
    torch.manual_seed(1)
    short = torch.full((2000,), 20)  # under one stride (25 frames): one USR mask, no floor mask
    assert time_mask(short, 20, 10, 25, "usr").any(1).float().mean() > 0.5
    assert not time_mask(short, 20, 10, 25, "floor").any()
    one, two = (time_mask(torch.full((4000,), n), n, 10, 25, "usr").sum(1) for n in (25, 26))
    assert one.max() <= 9 and two.max() <= 18 and two.float().mean() > 1.5 * one.float().mean()


def test_no_window_no_mask():
    assert time_mask(torch.tensor([50]), 50, 0, 25) is None
    assert StudentAugmentation(video_mask_max_s=0.0).video_time_mask(torch.tensor([50]), 50) is None


def test_unknown_mask_rule_is_rejected():
    with pytest.raises(ValueError, match="mask_rule"):
        StudentAugmentation(mask_rule="ceil")


def test_masked_video_frames_are_zero_after_normalisation(tiny_config, token_list, make_av_batch):
    """USR masks the normalised video: a masked frame is the mean grey, 0 at the stem's input."""
    model = build_model_from_config(tiny_config, token_list).eval()
    batch = make_av_batch([6, 4], [1, 1], len(token_list))
    stem_input = {}
    model.video_frontend.stem.register_forward_pre_hook(lambda m, args: stem_input.setdefault("x", args[0]))
    masked = torch.zeros(2, 6, dtype=torch.bool)
    masked[0, 1:3] = masked[1, 0] = True
    audio = torch.zeros_like(batch["speech"], dtype=torch.bool)
    audio[:, :640] = True
    with torch.no_grad():
        model.encode(
            batch["speech"],
            batch["speech_lengths"],
            batch["video"],
            batch["video_lengths"],
            ["av"],
            masks=TimeMasks(video=masked, audio=audio),
        )
    x = stem_input["x"][:, 0]  # (B, T, H, W), normalised
    frontend = model.video_frontend
    normalised = (batch["video"][..., 4:92, 4:92] / 255.0 - frontend.pixel_mean) / frontend.pixel_std
    assert torch.equal(x[masked], torch.zeros_like(x[masked]))
    kept = ~masked & (torch.arange(6) < batch["video_lengths"][:, None])
    torch.testing.assert_close(x[kept], normalised[kept])
