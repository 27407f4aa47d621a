"""One encoder stack for recognition, pre-training and their EMA teachers (issue 22, point 1)."""

from pathlib import Path

import pytest
import torch

from espnet_usr2.model.encoder_stack import EncoderStack
from espnet_usr2.tasks.config import build_model_from_config

# state-dict names and shapes of the tiny models, written by the code *before* the two encode
# paths became one: checkpoints, encoder.pth files and release imports depend on these names
NAMES_BEFORE = Path(__file__).parent / "fixtures" / "tiny_state_dict_names.txt"
BUILDS = {
    "usr2": ("train_usr2_tiny.yaml", ["--semi", "usr2", "--semi_conf", "unlabelled_heads=false"]),
    "pretrain": ("pretrain_usr2_tiny.yaml", []),
}


def _recorded(kind: str):
    rows = [line.split(" ", 2) for line in NAMES_BEFORE.read_text().splitlines()]
    return [(name, shape) for k, name, shape in rows if k == kind]


@pytest.mark.parametrize("kind", sorted(BUILDS))
def test_parameter_names_are_those_written_before_the_change(conf_dir, token_list, kind):
    config, extra = BUILDS[kind]
    model = build_model_from_config(conf_dir / config, token_list, extra)
    assert [(k, str(list(v.shape))) for k, v in model.state_dict().items()] == _recorded(kind)


def test_both_models_and_their_teachers_encode_through_the_stack(conf_dir, token_list):
    for config, extra in BUILDS.values():
        model = build_model_from_config(conf_dir / config, token_list, extra)
        assert isinstance(model, EncoderStack)
        assert isinstance(model.teacher.model, EncoderStack)


def test_a_pretraining_teacher_mirrors_only_the_stack(conf_dir, token_list):
    model = build_model_from_config(conf_dir / "pretrain_usr2_tiny.yaml", token_list)
    teacher_names = {k for k, _ in model.teacher.model.named_parameters()}
    assert teacher_names == {k for k, _ in model.encoder_stack().named_parameters()}
    assert not any(k.startswith("predictor.") for k in teacher_names)


def test_recognition_and_the_plain_stack_encode_the_same(conf_dir, token_list, make_av_batch):
    model = build_model_from_config(conf_dir / "train_usr2_tiny.yaml", token_list).eval()
    batch = make_av_batch([12, 9], [2, 2], len(token_list))
    inputs = {k: batch[k] for k in ("speech", "speech_lengths", "video", "video_lengths")}
    with torch.no_grad():
        ours = model.encode(**inputs)
        plain = model.encoder_stack().encode(**inputs, modalities=model.modalities)
    for m in model.modalities:
        assert torch.equal(ours[m][0], plain[m][0]) and torch.equal(ours[m][1], plain[m][1])
