"""The EMA teacher: cosine momentum schedule, update rule, batch norm and buffers, dropout, checkpoint state."""

import copy
import math

import pytest
import torch
from torch import nn

from espnet_usr2.semi.teacher import EMATeacher, cosine_momentum


def test_momentum_schedule_endpoints_and_shape():
    assert cosine_momentum(0, 1000, 0.998, 1.0) == pytest.approx(0.998)
    assert cosine_momentum(1000, 1000, 0.998, 1.0) == pytest.approx(1.0)
    assert cosine_momentum(5000, 1000, 0.998, 1.0) == pytest.approx(1.0)  # stays at the end value
    assert cosine_momentum(500, 1000, 0.998, 1.0) == pytest.approx(0.999)  # cosine midpoint
    quarter = 1.0 - 0.002 * (math.cos(math.pi / 4) + 1) / 2
    assert cosine_momentum(250, 1000, 0.998, 1.0) == pytest.approx(quarter)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)
        self.dropout = nn.Dropout(0.5)


def test_update_is_the_ema_of_parameters_and_copies_buffers_only_in_running_mode():
    torch.manual_seed(0)
    student = _Net()
    teachers = {
        mode: EMATeacher(student, momentum_start=0.9, momentum_end=0.9, total_steps=10, batch_norm=mode)
        for mode in ("batch", "running")
    }
    for teacher in teachers.values():
        teacher.sync_from(student)
    before = teachers["batch"].model.linear.weight.clone()
    with torch.no_grad():
        student.linear.weight.add_(1.0)
        student.bn.running_mean.fill_(3.0)
    for teacher in teachers.values():
        assert teacher.update(student) == pytest.approx(0.9)
        torch.testing.assert_close(teacher.model.linear.weight, 0.9 * before + 0.1 * student.linear.weight)
        assert int(teacher.num_updates) == 1
    assert torch.equal(teachers["running"].model.bn.running_mean, student.bn.running_mean)
    assert torch.equal(teachers["batch"].model.bn.running_mean, torch.zeros(2))  # its own, as USR's EMA


def test_dropout_is_off_and_batch_norm_follows_the_mode():
    student = _Net()
    wrapper = nn.Module()
    wrapper.batch, wrapper.running = EMATeacher(student, batch_norm="batch"), EMATeacher(student, batch_norm="running")
    wrapper.train()
    for teacher in (wrapper.batch, wrapper.running):
        assert not teacher.model.dropout.training
        assert all(not p.requires_grad for p in teacher.parameters())
    assert wrapper.batch.model.bn.training and not wrapper.running.model.bn.training
    wrapper.eval()  # validation: the teacher's own running statistics
    assert not wrapper.batch.model.bn.training


def test_batch_mode_output_is_an_eval_pass_with_the_batch_moments():
    """USR's teacher: BatchNorm with the statistics of the batch it is given, dropout off."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    teacher = EMATeacher(student, batch_norm="batch")
    teacher.train()
    x = torch.randn(16, 3)
    with torch.no_grad():
        out = teacher.model(x)
        hidden = teacher.model[0](x)
        reference = copy.deepcopy(teacher.model).eval()
        reference[1].running_mean.copy_(hidden.mean(0))
        reference[1].running_var.copy_(hidden.var(0, unbiased=False))
        torch.testing.assert_close(out, reference(x))
        teacher.model[1].running_mean.fill_(100.0)  # stored statistics play no part
        torch.testing.assert_close(teacher.model(x), out)


def test_unknown_batch_norm_mode_is_rejected():
    with pytest.raises(ValueError, match="batch_norm"):
        EMATeacher(_Net(), batch_norm="student")


def test_teacher_state_round_trips_through_state_dict():
    student = _Net()
    teacher = EMATeacher(student, total_steps=100)
    teacher.sync_from(student)
    for _ in range(3):
        teacher.update(student)
    restored = EMATeacher(_Net())
    restored.load_state_dict(teacher.state_dict(), strict=True)
    assert int(restored.num_updates) == 3 and int(restored.total_steps) == 100 and bool(restored.initialized)
    assert restored.current_momentum() == teacher.current_momentum()


def test_update_before_initialisation_is_an_error():
    student = _Net()
    with pytest.raises(RuntimeError, match="never initialised"):
        EMATeacher(student).update(student)


@pytest.mark.parametrize(
    "kwargs", [dict(momentum_start=1.2), dict(momentum_start=0.999, momentum_end=0.99), dict(total_steps=-1)]
)
def test_out_of_range_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError, match="teacher"):
        EMATeacher(_Net(), **kwargs)


def test_validation_reports_the_teachers_metrics_too(make_av_batch, tiny_config, token_list):
    from espnet_usr2.tasks.config import build_model_from_config

    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, token_list, ["--semi", "usr2"])
    batch = make_av_batch([30, 24], [5, 4], len(token_list))
    model.eval()
    _, stats, _ = model(**batch)
    assert not any(k.endswith("_teacher") for k in stats)  # teacher not initialised yet
    model.ensure_teacher_initialized()
    with torch.no_grad():  # make the teacher a different network from the student
        for p in model.teacher.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, stats, _ = model(**batch)
    _, own, _ = model.teacher.model(**batch)  # the teacher evaluated as a model of its own
    for key in ("loss", "loss_ctc_a", "acc_av", "cer_ctc_v"):
        assert stats[f"{key}_teacher"] == pytest.approx(float(own[key]))
    assert stats["loss_teacher"] != pytest.approx(float(stats["loss"]))
    model.train()
    _, stats, _ = model(**batch)
    assert not any(k.endswith("_teacher") for k in stats)  # training steps: student only
    quiet = build_model_from_config(tiny_config, token_list, ["--semi", "usr2", "--teacher_conf", "validate=false"])
    quiet.ensure_teacher_initialized()
    quiet.eval()
    assert not any(k.endswith("_teacher") for k in quiet(**batch)[1])


def test_sync_batchnorm_converts_student_and_teacher_on_multi_gpu_runs_only(tiny_config, token_list):
    from espnet_usr2.tasks.config import parse_training_args
    from espnet_usr2.tasks.usr2 import USR2Task

    args = parse_training_args(tiny_config, token_list, ["--semi", "usr2", "--sync_batchnorm", "true"])
    args.distributed, args.ngpu = False, 0
    single = USR2Task.build_model(args)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in single.modules())
    args.distributed, args.ngpu = True, 1
    multi = USR2Task.build_model(args)
    synced = [name for name, m in multi.named_modules() if isinstance(m, nn.SyncBatchNorm)]
    assert any(n.startswith("video_frontend.") for n in synced) and any(n.startswith("teacher.model.") for n in synced)
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) for m in multi.modules())
    assert list(multi.state_dict()) == list(single.state_dict())  # checkpoints load either way


def test_host_copies_of_the_state_follow_every_change_of_the_buffers():
    """steps_done / schedule_steps / is_initialized read the buffers again whenever they changed
    outside the teacher (a checkpoint loaded, fill_, a copy), and not after the teacher's own update."""
    student = _Net()
    teacher = EMATeacher(student, total_steps=100)
    assert (teacher.steps_done, teacher.schedule_steps, teacher.is_initialized) == (0, 100, False)
    teacher.sync_from(student)
    teacher.update(student)
    teacher.update(student)
    assert teacher.is_initialized and teacher.steps_done == 2 == int(teacher.num_updates)
    reads = []
    original = torch.Tensor.item

    def counted(self):
        reads.append(self)
        return original(self)

    torch.Tensor.item = counted
    try:
        teacher.update(student)  # its own writes: known without reading the buffers
        assert teacher.steps_done == 3 and teacher.current_momentum() > 0
    finally:
        torch.Tensor.item = original
    assert reads == []
    teacher.num_updates.fill_(7)  # as a test or a benchmark sets the step
    teacher.total_steps.fill_(50)  # as the trainer sets the schedule's length
    assert (teacher.steps_done, teacher.schedule_steps) == (7, 50)
    restored = EMATeacher(student, total_steps=1)
    assert restored.steps_done == 0 and not restored.is_initialized
    restored.load_state_dict(teacher.state_dict())
    assert (restored.steps_done, restored.schedule_steps, restored.is_initialized) == (7, 50, True)
    duplicate = copy.deepcopy(teacher)
    duplicate.num_updates.fill_(11)
    assert duplicate.steps_done == 11 and teacher.steps_done == 7
