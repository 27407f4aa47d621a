"""The four paper configurations have the paper's parameter counts (Table 5, within 5%)."""

import pytest

from espnet_usr2.tasks.config import build_model_from_config

PAPER_MILLIONS = {"base": 86, "base_plus": 171, "large": 503, "huge": 953}
ARCHITECTURE = {  # (encoder blocks, decoder blocks, attention dim)
    "base": (12, 6, 512),
    "base_plus": (12, 6, 768),
    "large": (24, 9, 1024),
    "huge": (32, 9, 1280),
}


@pytest.mark.parametrize("size", sorted(PAPER_MILLIONS))
def test_parameter_count_within_five_percent_of_paper(conf_dir, size):
    model = build_model_from_config(conf_dir / f"train_usr2_{size}.yaml", ["tok"] * 1000, meta=True)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(millions - PAPER_MILLIONS[size]) / PAPER_MILLIONS[size] < 0.05, f"{size}: {millions:.1f} M"
    enc_blocks, dec_blocks, dim = ARCHITECTURE[size]
    assert len(model.encoder.blocks) == enc_blocks
    assert len(model.decoder.decoders) == dec_blocks
    assert model.encoder.output_size() == dim


def test_frontends_are_the_same_in_every_size(conf_dir):
    counts = set()
    for size in PAPER_MILLIONS:
        model = build_model_from_config(conf_dir / f"train_usr2_{size}.yaml", ["tok"] * 1000, meta=True)
        counts.add(
            sum(p.numel() for p in model.audio_frontend.parameters())
            + sum(p.numel() for p in model.video_frontend.parameters())
        )
    assert len(counts) == 1
