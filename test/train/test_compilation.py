"""``--compile true`` (issue 23 point 2): the compiled training step computes what the eager
one does and stops compiling after the first step, and the padding that makes the shapes
buckets (``--compile_pad_frames``) is invisible to every loss."""

from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch._dynamo
import torch._inductor.config

from espnet_usr2.tasks.config import build_model_from_config
from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.testing.host_syncs import SPF, TOKENS, semi_batch
from espnet_usr2.train.compilation import (
    TimeBucketedCollate,
    compile_for_training,
    compiled_parts,
    pad_time_to_multiple,
)
from espnet_usr2.train.trainer import USR2Trainer

BUCKET = 8  # frames


def _semi_model(tiny_config):
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, TOKENS, ["--semi", "usr2"])
    model.ensure_teacher_initialized()
    return model.train()


def _step(model, batch, seed: int):
    """Loss and gradients of one training step; ``seed`` fixes augmentation and dropout."""
    torch.manual_seed(seed)
    model.zero_grad()
    loss = model(**batch)[0]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _bucketed(frames):
    return pad_time_to_multiple(semi_batch(frames=frames), BUCKET, SPF)


def test_compiles_every_resnet_encoder_block_and_decoder_layer_of_student_and_teacher(tiny_config):
    model = _semi_model(tiny_config)
    names = [name for name, _ in compiled_parts(model)]
    for net in ("", "teacher.model."):
        for frontend in ("audio_frontend", "video_frontend"):
            assert f"{net}{frontend}.stem" in names and f"{net}{frontend}.trunk" in names
        assert f"{net}encoder.blocks.0" in names and f"{net}decoder.decoders.0" in names
    state_keys = set(model.state_dict())
    compile_for_training(model, backend="aot_eager")
    assert set(model.state_dict()) == state_keys  # checkpoints keep their names


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given (one per compilation or
    recompilation) and runs them with aot_eager (TorchDynamo's capture and AOT autograd,
    no code generation: the generated kernels are checked below on the parts they replace)."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return torch._dynamo.backends.registry.lookup_backend("aot_eager")(graph_module, example_inputs)


def test_compiled_step_equals_eager_and_stops_compiling_after_the_first_step(tiny_config):
    """The first step's passes (labelled and unlabelled halves, the teacher) already have
    different shapes, so automatic dynamic shapes make the time and batch axes symbolic
    there; later batches of other lengths, bucketed or not, compile nothing new."""
    eager = _semi_model(tiny_config)
    compiled = copy.deepcopy(eager)
    backend = CountingBackend()
    torch._dynamo.reset()
    compile_for_training(compiled, backend=backend)
    _step(compiled, _bucketed((20, 16, 12, 18)), 0)
    _step(eager, _bucketed((20, 16, 12, 18)), 0)
    graphs_after_warm_up = backend.graphs
    assert graphs_after_warm_up > 0
    later = [_bucketed((30, 16, 12, 28)), _bucketed((41, 9, 14, 17)), semi_batch(frames=(19, 11, 24, 8))]
    for seed, batch in enumerate(later, start=1):
        loss_c, grads_c = _step(compiled, batch, seed)
        loss_e, grads_e = _step(eager, batch, seed)
        torch.testing.assert_close(loss_c, loss_e)
        assert grads_c.keys() == grads_e.keys()
        for name in grads_e:
            torch.testing.assert_close(grads_c[name], grads_e[name], msg=name)
    assert backend.graphs == graphs_after_warm_up, "compiled again after the first step"


def test_inductor_kernels_match_eager_forward_and_backward(tiny_config):
    """The generated CPU kernels of a video front-end and an encoder block: outputs and
    gradients as eager mode's (inductor's own random numbers off: dropout as eager)."""
    model = _semi_model(tiny_config)
    parts = {"video": model.video_frontend, "block": model.encoder.blocks[0]}
    compiled = {name: copy.deepcopy(part) for name, part in parts.items()}
    for part in compiled.values():
        part.compile(backend="inductor")
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 12, 88, 88, generator=g) * 255
    lengths = torch.tensor([12, 9])
    hidden = torch.randn(2, 12, model.encoder.output_size(), generator=g)
    _, pos_emb = model.encoder.pos_enc(hidden)
    mask = torch.ones(2, 1, 12, dtype=torch.bool)
    calls = {"video": lambda m: m(video, lengths)[0], "block": lambda m: m(hidden, pos_emb, mask)}
    with mock.patch.object(torch._inductor.config, "fallback_random", True):
        for name, call in calls.items():
            outputs = []
            for module in (parts[name], compiled[name]):
                torch.manual_seed(1)
                module.zero_grad()
                out = call(module)
                out.square().sum().backward()
                outputs.append((out.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}))
            (out_e, grads_e), (out_c, grads_c) = outputs
            torch.testing.assert_close(out_c, out_e, rtol=1e-4, atol=1e-5)
            for n, grad in grads_e.items():
                if n.endswith("linear_k.bias"):  # zero in exact arithmetic (softmax ignores it): rounding only
                    continue
                torch.testing.assert_close(grads_c[n], grad, rtol=1e-3, atol=1e-5 * grad.abs().max().item(), msg=n)


def test_bucket_padding_changes_no_loss_in_evaluation(tiny_config):
    """Padding is zeros behind the lengths: with the batch norm's running statistics (no
    batch statistics to see the extra frames) the losses are the same."""
    model = _semi_model(tiny_config).eval()
    batch = semi_batch(frames=(20, 16, 12, 18))
    padded = pad_time_to_multiple(batch, BUCKET, SPF)
    assert padded["video"].shape[1] == 24 and padded["speech"].shape[1] == 24 * SPF
    assert torch.equal(padded["video"][:, :20], batch["video"]) and not padded["video"][:, 20:].any()
    assert torch.equal(padded["video_lengths"], batch["video_lengths"])
    with torch.no_grad():
        plain, padded_stats = model(**batch)[1], model(**padded)[1]
    for key in ("loss_att_v", "loss_ctc_a", "loss_att_av", "acc_av"):
        if key in plain:
            torch.testing.assert_close(padded_stats[key], plain[key], rtol=1e-4, atol=1e-5, msg=key)
    assert any(key in plain for key in ("loss_att_v", "loss_ctc_a", "loss_att_av"))


def test_pad_time_to_multiple_pads_audio_to_the_videos_duration():
    batch = {"speech": torch.ones(2, 30 * SPF - 100), "video": torch.ones(2, 29, 4, 4)}
    padded = pad_time_to_multiple(batch, 16, SPF)
    assert padded["video"].shape == (2, 32, 4, 4) and padded["speech"].shape == (2, 32 * SPF)
    assert pad_time_to_multiple(batch, 0, SPF) is batch
    audio_only = pad_time_to_multiple({"speech": torch.ones(1, 17 * SPF)}, 16, SPF)
    assert audio_only["speech"].shape == (1, 32 * SPF)


def test_compile_options_reach_the_collate_and_are_checked():
    parser = USR2Task.get_parser()
    args = parser.parse_args(["--compile", "true", "--compile_pad_frames", "25"])
    collate = USR2Task.build_collate_fn(args, train=True)
    assert isinstance(collate, TimeBucketedCollate) and collate.frames == 25 and collate.samples_per_frame == SPF
    ids, batch = collate([("u1", {"video": torch.ones(30, 4, 4).numpy()})])
    assert ids == ["u1"] and batch["video"].shape == (1, 50, 4, 4) and batch["video_lengths"].tolist() == [30]
    assert not isinstance(USR2Task.build_collate_fn(parser.parse_args([]), train=True), TimeBucketedCollate)
    with pytest.raises(ValueError, match="compile_pad_frames"):
        USR2Trainer.build_options(parser.parse_args(["--compile_pad_frames", "-1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--compile_mode", "fastest"])
