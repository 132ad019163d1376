"""Input checks of zhisuan.kernels.matmul / attention / all_reduce: clear errors naming argument, shape, dtype."""

import pytest
import torch

from zhisuan import kernels


def test_matmul_rejects_bad_input():
    a = torch.randn(4, 5)
    with pytest.raises(ValueError, match=r"inner dimensions differ: a is \(4, 5\)"):
        kernels.matmul(a, torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"b must be 2-D \(K, N\), got shape \(5,\)"):
        kernels.matmul(a, torch.randn(5))
    with pytest.raises(TypeError, match="a=float32, b=float64"):
        kernels.matmul(a, torch.randn(5, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="b must be a torch.Tensor, got list"):
        kernels.matmul(a, [[1.0]])
    with pytest.raises(ValueError, match="a on cpu, b on meta"):
        kernels.matmul(a, torch.empty(5, 2, device="meta"))


@pytest.mark.parametrize("m,n,k", [(0, 3, 4), (3, 0, 4), (3, 4, 0)])
def test_matmul_empty_dimensions(m, n, k):
    c = kernels.matmul(torch.randn(m, k), torch.randn(k, n), backend="torch")
    assert c.shape == (m, n)
    assert torch.count_nonzero(c) == 0


def test_attention_rejects_bad_input():
    q = torch.randn(1, 4, 8, 16)
    with pytest.raises(ValueError, match="multiple of k/v heads"):
        kernels.attention(q, torch.randn(1, 3, 8, 16), torch.randn(1, 3, 8, 16))
    with pytest.raises(ValueError, match="head_dim differs"):
        kernels.attention(q, torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8))
    with pytest.raises(
        ValueError, match=r"q must be 4-D \(batch, heads, seq, head_dim\), got shape \(4, 8, 16\)"
    ):
        kernels.attention(q[0], q, q)
    with pytest.raises(TypeError, match="q=float32, k=float16"):
        kernels.attention(q, q.half(), q)
    with pytest.raises(ValueError, match="k and v must have one shape"):
        kernels.attention(q, q, torch.randn(1, 4, 9, 16))


def test_attention_torch_backend_against_reference_with_gqa_and_causal_offsets():
    from zhisuan.bench.workloads.attention import reference_attention

    for seq_q, seq_k in ((7, 7), (3, 9), (9, 3), (1, 17)):
        q, k, v = torch.randn(2, 4, seq_q, 16), torch.randn(2, 2, seq_k, 16), torch.randn(2, 2, seq_k, 16)
        for causal in (False, True):
            out = kernels.attention(q, k, v, causal=causal, backend="torch")
            ref = reference_attention(q, k, v, causal, 16**-0.5)
            assert (out.double() - ref).abs().max() < 1e-5, (seq_q, seq_k, causal)


def test_attention_no_keys_gives_zeros():
    q = torch.randn(1, 2, 5, 8)
    out = kernels.attention(q, torch.randn(1, 2, 0, 8), torch.randn(1, 2, 0, 8), backend="torch")
    assert out.shape == q.shape and torch.count_nonzero(out) == 0


def test_all_reduce_rejects_bad_input():
    with pytest.raises(ValueError, match="op must be one of"):
        kernels.all_reduce(torch.ones(3), op="prod")
    with pytest.raises(ValueError, match="must be contiguous"):
        kernels.all_reduce(torch.ones(4, 4).T, op="sum")
    with pytest.raises(kernels.BackendUnavailable, match="no process group"):
        kernels.all_reduce(torch.ones(3), backend="torch")
