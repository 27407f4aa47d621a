"""How often one semi-supervised training step would wait for the GPU (issue 23, item 3).

Counted on the CPU by call site (``espnet_usr2.testing.host_syncs``): every read of a
tensor's value on the host and every op whose output size depends on the data. Each site
that may still do it is listed with its most calls in one step of the tiny config (2
labelled + 2 unlabelled clips, USR 2.0 in both modes and USR v1) and why it is there; a new
site, or more calls at one, fails -- the way to pass is to remove the wait, or to list it
here with its reason. ``python bench/count_host_syncs.py`` prints the full report.
"""

from __future__ import annotations

import pytest
import torch

from espnet_usr2.tasks.config import build_model_from_config
from espnet_usr2.testing.host_syncs import TOKENS, count_training_step, semi_batch

# function -> (most calls in one step, why)
ALLOWED = {
    "model/augmentation.py:crop_and_flip": (
        18,
        "crop offsets and flips drawn on the CPU generator: host tensors, no device wait",
    ),
    "semi/mixed_sampling.py:use_ar_mode": (1, "the step's mode drawn on a CPU generator: a host tensor"),
    "data/av_sync.py:check_batch_frame_agreement": (
        3,
        "audio and video frame counts checked per modality, with an error naming the clips that disagree",
    ),
    "semi/ctc_pseudo_labels.py:ctc_collapse": (4, "the pseudo-labels are as wide as the longest collapsed label"),
    "semi/pl_losses.py:strip_special": (12, "AR pseudo-labels stripped of sos / eos (AR mode only)"),
    "semi/ar_pseudo_labels.py:ar_greedy_pseudo_labels": (
        4,
        "the AR loop stops once every hypothesis has ended (AR mode only)",
    ),
}


def _per_function(counter) -> dict:
    totals: dict = {}
    for site, n in counter.items():
        function = site.split(" ")[0]
        totals[function] = totals.get(function, 0) + n
    return totals


@pytest.mark.parametrize(
    "extra",
    [["--semi", "usr2", "--semi_conf", "p_ar=0.0"], ["--semi", "usr2", "--semi_conf", "p_ar=1.0"], ["--semi", "usr1"]],
    ids=["usr2_ctc_driven", "usr2_ar", "usr1"],
)
def test_waits_for_the_device_are_the_listed_ones(tiny_config, extra):
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, TOKENS, extra)
    model.ensure_teacher_initialized()
    model.train()
    batch = semi_batch()
    model(**batch)[0].backward()  # the first step starts the unlabelled objective; count a later one
    model.zero_grad()
    _, ops = count_training_step(model, batch)
    found = _per_function(ops)
    unexpected = {f: n for f, n in found.items() if f not in ALLOWED or n > ALLOWED[f][0]}
    assert not unexpected, (
        f"new or more waits for the device: {unexpected}; remove them or list them in "
        f"ALLOWED with the reason (full report: python bench/count_host_syncs.py)"
    )
