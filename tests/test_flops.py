import pytest
import torch

from zhisuan.bench.core import flops


def visible_pairs_brute_force(seq_q, seq_k):
    rows = torch.arange(seq_q)[:, None]
    return int((torch.arange(seq_k)[None, :] <= rows + (seq_k - seq_q)).sum())


@pytest.mark.parametrize(
    "seq_q,seq_k", [(1, 1), (7, 7), (97, 97), (3, 9), (9, 3), (1, 1025), (1025, 1), (17, 129)]
)
def test_causal_pairs_match_the_mask(seq_q, seq_k):
    assert flops.causal_pairs(seq_q, seq_k) == visible_pairs_brute_force(seq_q, seq_k)


def test_matmul_counts():
    assert flops.matmul_flops(7, 97, 1025) == 2 * 7 * 97 * 1025
    assert flops.matmul_bytes(2, 3, 4, 4) == 4 * (2 * 4 + 4 * 3 + 2 * 3)


def test_attention_flops_follow_flashattention_convention():
    full = flops.attention_flops(2, 8, 1024, 1024, 128, causal=False)
    assert full == 4 * 2 * 8 * 1024 * 1024 * 128
    causal = flops.attention_flops(2, 8, 1024, 1024, 128, causal=True)
    assert causal == pytest.approx(full * (1024 + 1) / 2 / 1024)
    assert flops.attention_flops(1, 1, 64, 64, 64, False, mode="bwd") == 2.5 * flops.attention_flops(
        1, 1, 64, 64, 64, False
    )
    with pytest.raises(ValueError, match="mode must be one of"):
        flops.attention_flops(1, 1, 1, 1, 1, False, mode="sideways")
