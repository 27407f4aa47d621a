"""Mixed sampling of AR vs CTC-driven mode: reproducible from (seed, step), schedules."""

import math

import pytest
import torch

from espnet_usr2.semi.mixed_sampling import (
    MixedSamplingConfig,
    ar_probability,
    sample_mode,
    step_generator,
    use_ar_mode,
)


def test_same_seed_and_step_give_the_same_draw_without_touching_global_rng():
    cfg = MixedSamplingConfig(p_ar=0.5)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = [use_ar_mode(cfg, seed=42, step=s) for s in range(200)]
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    torch.manual_seed(999)  # a different global state (another rank, another history)
    second = [use_ar_mode(cfg, seed=42, step=s) for s in reversed(range(200))][::-1]
    assert first == second
    assert 70 < sum(first) < 130  # about half of the steps are AR
    other_seed = [use_ar_mode(cfg, seed=7, step=s) for s in range(200)]
    assert other_seed != first


@pytest.mark.parametrize("p, expected", [(0.0, False), (1.0, True)])
def test_probability_edge_cases(p, expected):
    cfg = MixedSamplingConfig(p_ar=p)
    assert all(use_ar_mode(cfg, 42, s) is expected for s in range(300))
    assert sample_mode(cfg, 42, 5) == ("ar" if expected else "ctc_driven")


def test_schedules():
    lin = MixedSamplingConfig(schedule="linear", p_ar_start=0.2, p_ar_end=0.8)
    cos = MixedSamplingConfig(schedule="cosine", p_ar_start=0.2, p_ar_end=0.8)
    assert ar_probability(lin, 0, 100) == pytest.approx(0.2)
    assert ar_probability(lin, 25, 100) == pytest.approx(0.35)
    assert ar_probability(lin, 500, 100) == pytest.approx(0.8)  # clipped after the end
    assert ar_probability(cos, 25, 100) == pytest.approx(0.2 + 0.6 * (1 - math.cos(math.pi / 4)) / 2)
    assert ar_probability(cos, 50, 100) == pytest.approx(0.5)
    assert ar_probability(MixedSamplingConfig(p_ar=0.3), 10, 0) == 0.3
    with pytest.raises(ValueError, match="total_steps"):
        ar_probability(lin, 1, 0)
    # schedule from 0 to 1: AR never at the start, always at the end
    ramp = MixedSamplingConfig(schedule="linear", p_ar_start=0.0, p_ar_end=1.0)
    assert not use_ar_mode(ramp, 42, 0, total_steps=100) and use_ar_mode(ramp, 42, 100, total_steps=100)


def test_step_generator_is_deterministic():
    a = torch.rand(4, generator=step_generator(42, 10))
    assert torch.equal(a, torch.rand(4, generator=step_generator(42, 10)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(42, 11)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(p_ar=1.5), "p_ar"),
        (dict(schedule="step"), "schedule"),
        (dict(p_ar_end=-0.5), "p_ar_end"),
    ],
)
def test_config_validation_names_the_option(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MixedSamplingConfig(**kwargs)
