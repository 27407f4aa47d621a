"""The decoder's teacher-forced pass builds its masks on the device (issue 23 point 3) and
computes exactly what ESPnet's ``TransformerDecoder.forward`` computes."""

from __future__ import annotations

import pytest
import torch
from espnet2.asr.decoder.transformer_decoder import BaseTransformerDecoder

from espnet_usr2.model.decoder import USR2TransformerDecoder


@pytest.mark.parametrize("checkpointed", [(), (2,)], ids=["plain", "gradient_checkpointing"])
def test_hidden_states_equal_espnets_forward(checkpointed):
    torch.manual_seed(0)
    decoder = USR2TransformerDecoder(
        vocab_size=11, encoder_output_size=16, attention_heads=2, linear_units=32, num_blocks=3
    )
    decoder.gradient_checkpoint_layers = list(checkpointed)
    decoder.eval()  # dropout off: the two passes see the same function
    memory, memory_lens = torch.randn(3, 9, 16), torch.tensor([9, 4, 6])
    ys_in_lens = torch.tensor([5, 2, 3])  # as wide as the longest, as the model's inputs are
    ys_in = torch.randint(0, 11, (3, 5)).masked_fill(torch.arange(5)[None] >= ys_in_lens[:, None], 10)
    for return_all_hs in (False, True):
        ours, olens = decoder.hidden_states(memory, memory_lens, ys_in, ys_in_lens, return_all_hs=return_all_hs)
        espnets, espnet_olens = BaseTransformerDecoder.forward(
            decoder, memory, memory_lens, ys_in, ys_in_lens, return_all_hs=return_all_hs
        )
        if return_all_hs:
            (ours, our_layers), (espnets, espnet_layers) = ours, espnets
            assert len(our_layers) == len(espnet_layers) == 3
            for a, b in zip(our_layers, espnet_layers):
                assert torch.equal(a, b)
        assert torch.equal(ours, espnets) and torch.equal(olens, espnet_olens)
    logits, _ = decoder(memory, memory_lens, ys_in, ys_in_lens, modality="v")
    assert torch.equal(logits, decoder.output_head("v")(ours))


def test_padded_positions_beyond_the_longest_target_change_nothing_before_them():
    """Inputs wider than the longest target (ESPnet's masks would not fit them): the valid
    positions' states are those of the narrow input."""
    torch.manual_seed(0)
    decoder = USR2TransformerDecoder(
        vocab_size=11, encoder_output_size=16, attention_heads=2, linear_units=32, num_blocks=2
    ).eval()
    memory, memory_lens = torch.randn(2, 7, 16), torch.tensor([7, 5])
    ys_in, lens = torch.randint(0, 10, (2, 4)), torch.tensor([4, 3])
    wide = torch.cat([ys_in, torch.full((2, 3), 10)], dim=1)
    narrow_states, _ = decoder.hidden_states(memory, memory_lens, ys_in, lens)
    wide_states, _ = decoder.hidden_states(memory, memory_lens, wide, lens)
    torch.testing.assert_close(wide_states[:, :4], narrow_states)
