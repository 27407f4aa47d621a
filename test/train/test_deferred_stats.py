"""Step statistics read on the host once per log interval (issue 23 point 3): the deferred
sub-reporter aggregates exactly what ESPnet's reads every step, and reads nothing before
something asks for the numbers."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch
from espnet2.train.reporter import Reporter

from espnet_usr2.train.checkpoints import sub_reporter_state
from espnet_usr2.train.deferred_stats import DeferredSubReporter, defer_reads


def _steps():
    g = torch.Generator().manual_seed(0)
    for step in range(6):
        yield (
            {
                "loss": torch.rand((), generator=g) * 10,
                "acc_av": torch.rand(1, generator=g),
                "pl_count": torch.tensor(step * 3),
                "loss_unl": None if step % 2 else torch.rand((), generator=g),
            },
            torch.tensor(4 + step),
        )
        yield {"iter_time": 0.01 * step, "grad_norm": torch.tensor(1.5 + step)}, None


def _fill(sub_reporter):
    for n, (stats, weight) in enumerate(_steps()):
        sub_reporter.register(stats, weight)
        if n % 2:
            sub_reporter.next()


def test_aggregates_equal_espnets_and_values_are_read_only_when_asked():
    plain_reporter, deferred_reporter = Reporter(), Reporter()
    plain = plain_reporter.start_epoch("train", 1)
    deferred = defer_reads(deferred_reporter.start_epoch("train", 1))
    assert isinstance(deferred, DeferredSubReporter)
    _fill(plain)
    with mock.patch.object(torch.Tensor, "item", side_effect=AssertionError("read on the host")):
        _fill(deferred)  # no tensor read while the steps run
    assert len(deferred.pending) == 6 * 5  # every tensor statistic, and every value weighted by a tensor
    assert deferred.log_message(-3) == plain.log_message(-3)
    assert not deferred.pending
    deferred.finished()
    plain_reporter.finish_epoch(plain)
    deferred_reporter.finish_epoch(deferred)
    for key in ("loss", "acc_av", "pl_count", "loss_unl", "grad_norm", "iter_time"):
        a, b = plain_reporter.get_value("train", key, 1), deferred_reporter.get_value("train", key, 1)
        assert a == pytest.approx(b, rel=1e-12) or (math.isnan(a) and math.isnan(b)), key


def test_resume_state_holds_numbers_not_tensors():
    deferred = defer_reads(Reporter().start_epoch("train", 1))
    _fill(deferred)
    state = sub_reporter_state(deferred)
    for values in state["stats"].values():
        for reported in values:
            assert isinstance(reported.value, (int, float, np.floating)), reported


def test_a_non_scalar_statistic_is_refused_with_its_name():
    deferred = defer_reads(Reporter().start_epoch("train", 1))
    with pytest.raises(ValueError, match="'per_utt'"):
        deferred.register({"per_utt": torch.ones(3)}, None)
