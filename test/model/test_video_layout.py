"""The video front-end's channels-last layout (issue 23 point 1) computes the default
layout's function: same output, same gradients, same batch-norm statistics. On a GPU that
path runs when ``video_frontend_conf: {channels_last: true}``; here its code runs on the
CPU's kernels (the option itself stays off on CPU, see ``ResNet3DVideoFrontend``)."""

from __future__ import annotations

import copy

import torch

from espnet_usr2.model.frontends import ResNet3DVideoFrontend


def _run(frontend: ResNet3DVideoFrontend, pixels: torch.Tensor, channels_last: bool):
    frontend.zero_grad()
    pixels = pixels.clone().requires_grad_(True)
    out = frontend.encode_frames(pixels, channels_last=channels_last)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {n: p.grad.clone() for n, p in frontend.named_parameters()}
    stats = {n: b.clone() for n, b in frontend.named_buffers() if "running" in n}
    return out.detach(), pixels.grad, grads, stats


def test_channels_last_frames_match_the_default_layout_in_training():
    torch.manual_seed(0)
    default = ResNet3DVideoFrontend().train()  # the Base / Large ResNet-18 widths
    other = copy.deepcopy(default)
    pixels = torch.randn(2, 6, 88, 88)
    out_d, input_grad_d, grads_d, stats_d = _run(default, pixels, channels_last=False)
    out_c, input_grad_c, grads_c, stats_c = _run(other, pixels, channels_last=True)
    torch.testing.assert_close(out_c, out_d, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(input_grad_c, input_grad_d, rtol=1e-3, atol=1e-4 * input_grad_d.abs().max().item())
    for name, grad in grads_d.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-3, atol=1e-4 * grad.abs().max().item(), msg=name)
    for name, stat in stats_d.items():
        torch.testing.assert_close(stats_c[name], stat, rtol=1e-4, atol=1e-6, msg=name)


def test_forward_uses_channels_last_only_on_cuda():
    """On CPU the option changes nothing (PyTorch's CPU channels-last backward once corrupted
    the heap in a 2-thread training step): the forward output is bit-identical."""
    torch.manual_seed(0)
    plain = ResNet3DVideoFrontend(channels=(8, 16, 32, 64)).eval()
    asked = copy.deepcopy(plain)
    asked.channels_last = True
    video, lengths = torch.rand(2, 5, 88, 88) * 255, torch.tensor([5, 3])
    with torch.no_grad():
        assert torch.equal(asked(video, lengths)[0], plain(video, lengths)[0])
