"""Example: time your own kernels inside your project's tests with zhisuan's `kernel_benchmark` fixture.

Copy this file into your test suite (zhisuan installed: the fixture is a pytest plugin, nothing to
import), then:

    pytest tests/test_kernel_benchmark_example.py --kernel-benchmark-json perf.json
    zhisuan compare baseline.json perf.json           # the noise-aware gate (exit 1 on a regression)
    pytest ... --benchmark-compare baseline.json --benchmark-compare-fail median:5%   # pytest-benchmark's

Each measurement: the kernel is checked first (timing a wrong kernel is pointless), then timed
with device synchronisation, a warm-up, a cache flush between samples and an explicit sample
count, and reported against the chip's peak for its dtype.
"""

import pytest
import torch

from zhisuan import kernels

GPU = torch.cuda.is_available()


def my_scaled_matmul(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The "kernel under test": stands for your own op (a Triton kernel, a CUDA extension...)."""
    return kernels.matmul(a, b) * scale


@pytest.mark.parametrize("m,n,k", [(256, 256, 256), (97, 512, 1025)])
def test_scaled_matmul_speed(kernel_benchmark, m, n, k):
    device = "cuda" if GPU else "cpu"
    dtype, dtype_name = (torch.bfloat16, "bf16") if GPU else (torch.float32, "fp32")
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)

    expected = (a.double() @ b.double()) * 0.5
    torch.testing.assert_close(my_scaled_matmul(a, b, 0.5).double(), expected, rtol=2e-2, atol=2e-2 * k**0.5)

    result = kernel_benchmark(
        lambda: my_scaled_matmul(a, b, 0.5),
        flops=2 * m * n * k,
        bytes=(m * k + k * n + m * n) * a.element_size(),
        device=device,
        dtype=dtype_name,
        iters=50,  # an explicit sample count (or time_budget_s=...); every sample is kept
    )
    assert len(result.samples_s) == 50 and result.median_s > 0
    if result.pct_peak is not None:  # None on a chip without a known peak: said, not guessed
        assert 0 < result.pct_peak < 100


@pytest.mark.skipif(not GPU, reason="needs a CUDA device")
def test_attention_speed_gpu(kernel_benchmark):
    q, k, v = (torch.randn(1, 16, 2048, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    # FlashAttention's FLOP count for the forward pass: 4 * batch * heads * seq_q * seq_k * head_dim.
    flops = 4 * 1 * 16 * 2048 * 2048 * 128
    result = kernel_benchmark(lambda: kernels.attention(q, k, v), flops=flops, device="cuda", dtype="bf16")
    assert result.flops_per_s > 0
