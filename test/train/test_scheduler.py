"""The ``warmupcosine`` lr schedule: linear warm-up, cosine to min_lr at the run's end."""

import math

import pytest
import torch

from espnet_usr2.train.scheduler import SCHEDULER_NAME, WarmupCosineLR


def _lrs(warmup: int, total: int, steps: int, peak: float = 1.0, min_lr: float = 0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = WarmupCosineLR(opt, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
    used = []
    for _ in range(steps):
        used.append(opt.param_groups[0]["lr"])  # the lr the coming update uses
        opt.step()
        sched.step()
    return used


def test_warm_up_then_cosine_to_min_lr_and_hold():
    lrs = _lrs(warmup=4, total=12, steps=16)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # update 1 already moves
    mid = 4 + (12 - 4) // 2  # update 8: half way through the decay
    assert lrs[mid - 1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # never rises after the peak
    assert lrs[11:] == pytest.approx([0.1] * 5)  # min_lr from the last planned step on


def test_run_too_short_for_the_warm_up_is_a_clear_error():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup_steps=10"):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=10)
    sched = WarmupCosineLR(opt, warmup_steps=10)
    with pytest.raises(ValueError, match="lower scheduler_conf.warmup_steps"):
        sched.set_total_steps(5)


def test_length_set_later_is_kept_by_the_state_dict():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, warmup_steps=2)
    sched.set_total_steps(30)
    restored = WarmupCosineLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), warmup_steps=2)
    restored.load_state_dict(sched.state_dict())
    assert restored.total_steps == 30


def test_registered_as_an_espnet_scheduler_choice():
    from espnet2.tasks import abs_task

    from espnet_usr2.tasks.usr2 import USR2Task

    assert abs_task.scheduler_classes[SCHEDULER_NAME] is WarmupCosineLR
    args = USR2Task.get_parser().parse_args(["--scheduler", SCHEDULER_NAME])
    assert args.scheduler == SCHEDULER_NAME


@pytest.mark.parametrize(
    "option, expected_warmup",
    [({"warmup_fraction": 0.2667}, 80), ({"warmup_epochs": 20}, 80), ({"warmup_steps": 7}, 7)],
)
def test_warm_up_as_a_fraction_or_in_epochs_is_fitted_to_the_run(option, expected_warmup):
    """USR's semi-supervised schedule: 20 of 75 epochs of warm-up, cosine to 0 at the end."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, min_lr=0.0, **option)
    sched.fit_to_run(run_steps=300, max_epoch=75)
    assert sched.warmup_steps == expected_warmup and sched.total_steps == 300
    assert sched.lr_factor(expected_warmup) == pytest.approx(1.0) and sched.lr_factor(300) == pytest.approx(0.0)


def test_more_than_one_warm_up_setting_is_rejected():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="give one of"):
        WarmupCosineLR(opt, warmup_fraction=0.2, warmup_epochs=3)
    with pytest.raises(ValueError, match="warmup_fraction"):
        WarmupCosineLR(opt, warmup_fraction=1.0)
