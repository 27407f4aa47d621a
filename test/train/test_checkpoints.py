"""Atomic checkpoint writes, resume-point helpers and the stop request (the pieces; the end-to-end
runs are in test_semi_train_cli.py)."""

import os
import signal
import types

import pytest
import torch
from torch.utils.data import DataLoader

import espnet_usr2.train.checkpoints as checkpoints
from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.train.checkpoints import (
    atomic_save,
    atomic_writes_in,
    keep_last,
    remove_stale_temporaries,
    skip_batches,
)
from espnet_usr2.train.stop_signal import StopRequest, parse_signals
from espnet_usr2.train.trainer import USR2Trainer


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    atomic_save({"epoch": 1}, path)

    def broken(obj, stream):
        stream.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "_serialize", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"epoch": 2}, path)
    assert torch.load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    (tmp_path / ".checkpoint.pth.tmp4242").write_bytes(b"partial")
    atomic_save({"ok": True}, tmp_path / "checkpoint.pth")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".checkpoint.pth.tmp4242"]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_espnet_modules_write_atomically_only_inside_the_block(tmp_path):
    module = types.SimpleNamespace(torch=torch)
    with atomic_writes_in(module):
        assert module.torch.save is atomic_save
        assert module.torch.nn is torch.nn  # everything else is torch's
        module.torch.save({"x": 1}, tmp_path / "a.pth")
    assert module.torch is torch
    assert torch.load(tmp_path / "a.pth") == {"x": 1}


def test_skip_batches_rebuilds_a_loader_over_the_remaining_batches():
    data = list(range(10))
    loader = DataLoader(data, batch_sampler=[[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], collate_fn=list)
    rest = skip_batches(loader, 3)
    assert isinstance(rest, DataLoader) and list(rest) == [[6, 7], [8, 9]]
    assert list(skip_batches(iter([[0], [1], [2]]), 2)) == [[2]]  # any iterable: advanced past them
    assert skip_batches(loader, 0) is loader


def test_keep_last_keeps_the_newest_step_copies(tmp_path):
    latest = tmp_path / "checkpoint.pth"
    for step in (2, 4, 6, 8):
        atomic_save({"step": step}, latest)
        keep_last(tmp_path, latest, step, keep=2)
    kept = sorted(p.name for p in tmp_path.glob("checkpoint.step*.pth"))
    assert kept == ["checkpoint.step6.pth", "checkpoint.step8.pth"]
    assert torch.load(tmp_path / "checkpoint.step6.pth") == {"step": 6}  # a rename over latest spares it


def test_signal_names_parse_and_a_misspelt_one_is_an_error():
    assert parse_signals("SIGTERM,usr1") == [signal.SIGTERM, signal.SIGUSR1]
    assert parse_signals("") == [] and parse_signals("none") == []
    with pytest.raises(ValueError, match="SIGTREM"):
        parse_signals("SIGTREM")


def test_stop_request_catches_its_signals_only_inside_the_block():
    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest([signal.SIGUSR1]) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.received == ["SIGUSR1"]
        assert stop.agreed(distributed=False, device="cpu")
    assert signal.getsignal(signal.SIGUSR1) == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--keep_last_n", "2"], "give --save_every_n_steps too"),
        (["--save_every_n_steps", "-1"], "0 or more"),
        (["--stop_signals", "SIGNOPE"], "SIGNOPE"),
    ],
)
def test_trainer_options_are_checked_before_training(tiny_config, token_list, extra, message):
    args = parse_training_args(tiny_config, token_list, extra)
    with pytest.raises(ValueError, match=message):
        USR2Trainer.build_options(args)


def test_trainer_options_carry_the_resume_point_settings(tiny_config, token_list):
    args = parse_training_args(
        tiny_config,
        token_list,
        ["--save_every_n_steps", "100", "--keep_last_n", "3", "--stop_signals", "SIGTERM,SIGUSR1"],
    )
    options = USR2Trainer.build_options(args)
    assert (options.save_every_n_steps, options.keep_last_n, options.stop_signals) == (100, 3, "SIGTERM,SIGUSR1")
