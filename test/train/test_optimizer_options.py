"""Fused Adam / AdamW on CUDA only, and only where the config leaves it open."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.train.optimizer_options import fused_on_cuda


@dataclass
class OnCuda:
    """Stands in for a CUDA parameter (this machine has no GPU): what fused_on_cuda reads."""

    requires_grad: bool = True
    is_cuda: bool = True

    def is_floating_point(self) -> bool:
        return True


def test_cuda_adam_and_adamw_become_fused():
    for optim in ("adam", "adamw"):
        assert fused_on_cuda(optim, {"lr": 1e-3}, [OnCuda(), OnCuda()]) == {"lr": 1e-3, "fused": True}


def test_a_config_that_names_the_implementation_is_kept():
    for conf in ({"fused": False}, {"foreach": True}, {"foreach": False, "lr": 2.0}):
        assert fused_on_cuda("adamw", conf, [OnCuda()]) is conf


def test_cpu_other_optimizers_and_mixed_devices_are_unchanged():
    conf = {"lr": 1e-3}
    assert fused_on_cuda("adamw", conf, torch.nn.Linear(2, 2).parameters()) is conf
    assert fused_on_cuda("sgd", conf, [OnCuda()]) is conf
    assert fused_on_cuda("adamw", conf, [OnCuda(), OnCuda(is_cuda=False)]) is conf
    assert fused_on_cuda("adamw", conf, [OnCuda(requires_grad=False)]) is conf  # nothing to train


def test_task_builds_the_configs_optimizer_on_cpu(tiny_config, token_list):
    args = parse_training_args(tiny_config, token_list, ["--token_type", "char", "--optim", "adamw"])
    before = dict(args.optim_conf)
    (optimizer,) = USR2Task.build_optimizers(args, USR2Task.build_model(args))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert not optimizer.defaults.get("fused")  # CPU: PyTorch's default implementation
    assert args.optim_conf == before


def test_task_passes_the_fused_options_without_changing_the_config(tiny_config, token_list, monkeypatch):
    """The CUDA path's plumbing, run on CPU (PyTorch has a fused CPU AdamW): the optimizer gets
    the device's options, the config (written to config.yaml) keeps the user's."""
    import espnet_usr2.tasks.usr2 as task_module

    monkeypatch.setattr(task_module, "fused_on_cuda", lambda optim, conf, params: {**conf, "fused": True})
    args = parse_training_args(tiny_config, token_list, ["--token_type", "char", "--optim", "adamw"])
    before = dict(args.optim_conf)
    (optimizer,) = USR2Task.build_optimizers(args, USR2Task.build_model(args))
    assert optimizer.defaults["fused"] is True
    assert args.optim_conf == before and "fused" not in args.optim_conf
