"""CTC knowledge distillation with blank selection (Hilmes et al.; semi/ctc_kd.py) on hand-built posteriors."""

import pytest
import torch

from espnet_usr2.semi.ctc_kd import CTCKDConfig, ctc_kd_loss, ctc_kd_objective, select_frames

V = 5
#            t: 0  1  2  3  4  5  6  7  8  9 | padding
PATH = [[0, 0, 0, 2, 0, 0, 0, 3, 3, 0, 0, 0], [0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
LENGTHS = torch.tensor([10, 6])
BLANK_P = [
    [0.99, 0.95, 0.85, 0.1, 0.7, 0.99, 0.97, 0.1, 0.1, 0.92, 0.5, 0.5],
    [0.99, 0.1, 0.99, 0.99, 0.99, 0.99, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
]


def teacher_log_probs():
    """Argmax follows PATH; the blank gets probability BLANK_P, a non-blank label 0.8."""
    out = torch.zeros(2, 12, V)
    for b in range(2):
        for t, label in enumerate(PATH[b]):
            p_blank = BLANK_P[b][t]
            if label == 0:
                out[b, t] = (1 - p_blank) / (V - 1)
            else:
                out[b, t] = (1 - p_blank - 0.8) / (V - 2)
                out[b, t, label] = 0.8
            out[b, t, 0] = p_blank
    return out.log()


def frames(mask_row):
    return [t for t, v in enumerate(mask_row.tolist()) if v]


def sel(cfg_kwargs, **kw):
    return select_frames(teacher_log_probs(), LENGTHS, CTCKDConfig(**cfg_kwargs), **kw)


def test_all_and_blank_elimination():
    s = sel(dict(selection="all"))
    assert frames(s[0]) == list(range(10)) and frames(s[1]) == list(range(6))
    s = sel(dict(selection="blank_elimination"))
    assert frames(s[0]) == [3, 7, 8] and frames(s[1]) == [1]


@pytest.mark.parametrize(
    "n, row0, row1",
    [
        (1, [2, 3, 4, 6, 7, 8, 9], [0, 1, 2]),
        (2, [1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 1, 2, 3]),  # never beyond the valid length 10
        (5, list(range(10)), list(range(6))),
    ],
)
def test_symmetric_selection(n, row0, row1):
    s = sel(dict(selection="symmetric", symmetric_n=n))
    assert frames(s[0]) == row0 and frames(s[1]) == row1


def test_trim_drops_leading_and_trailing_blank_runs():
    s = sel(dict(selection="trim"))
    assert frames(s[0]) == [3, 4, 5, 6, 7, 8] and frames(s[1]) == [1]
    all_blank = torch.zeros(1, 4, V)
    all_blank[..., 0] = 5.0
    assert not select_frames(all_blank.log_softmax(-1), torch.tensor([4]), CTCKDConfig(selection="trim")).any()


def test_threshold_on_teacher_blank_probability():
    s = sel(dict(selection="threshold", blank_threshold=0.9))
    # blank prob < 0.9: t=2 (0.85), 4 (0.7) and the non-blank frames; padding (0.5) never
    assert frames(s[0]) == [2, 3, 4, 7, 8] and frames(s[1]) == [1]


@pytest.mark.parametrize("ratio", [0.0, 1.0, 2.0])
def test_random_selection_count_and_reproducibility(ratio):
    a = sel(dict(selection="random", random_ratio=ratio), generator=torch.Generator().manual_seed(3))
    b = sel(dict(selection="random", random_ratio=ratio), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    non_blank = sel(dict(selection="blank_elimination"))
    assert (a & non_blank).sum() == non_blank.sum()  # every non-blank frame kept
    extra = (a & ~non_blank).sum(dim=1)
    assert extra.tolist() == [round(ratio * 3), round(ratio * 1)]  # beta * #non-blank random blanks
    assert not a[0, 10:].any() and not a[1, 6:].any()  # padding never drawn


def test_random_selection_varies_with_the_generator():
    draws = {
        tuple(frames(sel(dict(selection="random", random_ratio=1.0), generator=torch.Generator().manual_seed(s))[0]))
        for s in range(10)
    }
    assert len(draws) > 1


def test_kd_is_kl_summed_over_selected_frames_divided_by_batch():
    teacher = teacher_log_probs()
    student = torch.randn(2, 12, V, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    mask = sel(dict(selection="blank_elimination"))
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    expected = (kl[0, [3, 7, 8]].sum() + kl[1, 1]) / 2
    torch.testing.assert_close(ctc_kd_loss(student, teacher, mask), expected)
    assert ctc_kd_loss(teacher, teacher, mask).abs().item() < 1e-6  # KL(p || p) = 0


def test_scale_mixes_kd_and_ctc():
    teacher = teacher_log_probs()
    student = torch.randn(2, 12, V, generator=torch.Generator().manual_seed(1)).log_softmax(-1)
    cfg = CTCKDConfig(selection="all", scale=0.25)
    kd = ctc_kd_loss(student, teacher, select_frames(teacher, LENGTHS, cfg))
    ctc = torch.tensor(3.0)
    torch.testing.assert_close(ctc_kd_objective(student, teacher, LENGTHS, cfg, ctc_loss=ctc), 0.25 * kd + 0.75 * ctc)
    full = ctc_kd_objective(student, teacher, LENGTHS, CTCKDConfig(selection="all", scale=1.0))
    torch.testing.assert_close(full, kd)  # s = 1: no CTC needed
    with pytest.raises(ValueError, match="CTC"):
        ctc_kd_objective(student, teacher, LENGTHS, cfg)


def test_teacher_zero_probabilities_give_no_nan_and_gradient_reaches_student_only():
    teacher = torch.full((1, 3, V), float("-inf"))
    teacher[..., 0] = 0.0  # one-hot blank teacher: log 0 elsewhere
    student = torch.randn(1, 3, V, requires_grad=True)
    loss = ctc_kd_loss(student.log_softmax(-1), teacher, torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(selection="every"), "selection"),
        (dict(scale=1.1), "scale"),
        (dict(symmetric_n=-1), "symmetric_n"),
        (dict(blank_threshold=2.0), "blank_threshold"),
        (dict(random_ratio=-1.0), "random_ratio"),
    ],
)
def test_config_validation_names_the_option(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CTCKDConfig(**kwargs)
