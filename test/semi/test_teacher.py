"""The EMA teacher: cosine momentum schedule, update rule, buffers, eval mode, checkpoint state."""
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


def test_update_is_the_ema_of_parameters_and_copies_buffers():
    torch.manual_seed(0)
    student = _Net()
    teacher = EMATeacher(student, momentum_start=0.9, momentum_end=0.9, total_steps=10)
    teacher.sync_from(student)
    before = teacher.model.linear.weight.clone()
    with torch.no_grad():
        student.linear.weight.add_(1.0)
        student.bn.running_mean.fill_(3.0)
    mu = teacher.update(student)
    assert mu == pytest.approx(0.9)
    torch.testing.assert_close(teacher.model.linear.weight, 0.9 * before + 0.1 * student.linear.weight)
    assert torch.equal(teacher.model.bn.running_mean, student.bn.running_mean)
    assert int(teacher.num_updates) == 1


def test_teacher_has_no_gradients_and_stays_in_eval_mode():
    student = _Net()
    teacher = EMATeacher(student)
    wrapper = nn.Module()
    wrapper.teacher = teacher
    wrapper.train()
    assert not teacher.model.training and not teacher.model.dropout.training
    assert all(not p.requires_grad for p in teacher.parameters())


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


@pytest.mark.parametrize("kwargs", [dict(momentum_start=1.2), dict(momentum_start=0.999, momentum_end=0.99),
                                    dict(total_steps=-1)])
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
