"""Example: time your own kernels inside your project's tests with zhisuan's `kernel_benchmark` fixture.

Copy this file into your test suite (zhisuan installed: the fixture is a pytest plugin, nothing to
import), then:

    pytest tests/test_kernel_benchmark_example.py --kernel-benchmark-json perf.json
    zhisuan compare baseline.json perf.json     # the noise-aware gate (exit 1 on a regression)
    pytest tests/ --benchmark-disable            # the same tests, each kernel called once, untimed
                                                 # (--kernel-benchmark-disable without pytest-benchmark)

The fixture is pytest-benchmark's `benchmark` for kernels: `kernel_benchmark(fn, *args, **kwargs)`
returns fn's value, and `kernel_benchmark.measure(fn, args=..., flops=..., device=..., dtype=...,
reference=..., tolerance=...)` does the same with zhisuan's options and checks fn's output (without
a reference the result is marked "unchecked"); `kernel_benchmark.result` is then the measurement (every
sample, FLOP/s, % of the chip's peak). Each kernel is checked first (timing a wrong kernel is
pointless), then timed with device synchronisation, a warm-up, a cache flush between samples and
an explicit sample count.
"""

import pytest
import torch
import torch.nn.functional as F

from zhisuan import kernels

GPU = torch.cuda.is_available()


def my_scaled_matmul(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The "kernel under test": stands for your own op (a Triton kernel, a CUDA extension...)."""
    return kernels.matmul(a, b) * scale


def vendor_scaled_matmul(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The same op by the vendor library: the yardstick."""
    return torch.matmul(a, b) * scale


@pytest.mark.parametrize("m,n,k", [(256, 256, 256), (97, 512, 1025)])
def test_scaled_matmul_speed(kernel_benchmark, m, n, k):
    device = "cuda" if GPU else "cpu"
    dtype, dtype_name = (torch.bfloat16, "bf16") if GPU else (torch.float32, "fp32")
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    expected = (a.double() @ b.double()) * 0.5
    tolerance = {"rtol": 2e-2, "atol": 2e-2 * k**0.5}
    torch.testing.assert_close(my_scaled_matmul(a, b, 0.5).double(), expected, **tolerance)

    work = {
        # Checked before timing and again on the last timed call's output: a kernel that caches or
        # breaks after its first call cannot pass (max abs error within the tolerance given).
        "reference": expected,
        "tolerance": 2e-2 * float(expected.abs().max()),  # max abs error: 2 % of the largest value
        "flops": 2 * m * n * k,
        "bytes": (m * k + k * n + m * n) * a.element_size(),
        "device": device,
        "dtype": dtype_name,
        "iters": 50,  # an explicit sample count (or time_budget_s=...); every sample is kept
        "group": f"scaled matmul {m}x{n}x{k}",  # the table and the JSON put the two side by side
    }
    out = kernel_benchmark.measure(my_scaled_matmul, args=(a, b, 0.5), name="ours", **work)
    ours = kernel_benchmark.result
    kernel_benchmark.measure(vendor_scaled_matmul, args=(a, b, 0.5), name="vendor", **work)
    vendor = kernel_benchmark.result
    torch.testing.assert_close(
        out.double(), expected, **tolerance
    )  # the value, as pytest-benchmark returns it
    if kernel_benchmark.disabled:  # --benchmark-disable: each kernel ran once, untimed
        return

    assert len(ours.samples_s) == 50 and ours.median_s > 0
    # No bound on ours.pct_peak: it would test the peak figure and the host's load, not the kernel (a
    # CPU's derived peak uses its base clock, so turbo goes past 100 %; a busy host drags any floor).
    # The yardstick is the vendor library on the same inputs, timed alongside: best samples within 4x.
    assert min(ours.samples_s) < 4 * min(vendor.samples_s)


@pytest.mark.benchmark(group="attention")  # pytest-benchmark's marker names the group of every measurement
@pytest.mark.skipif(not GPU, reason="needs a CUDA device")
def test_attention_speed_gpu(kernel_benchmark):
    q, k, v = (torch.randn(1, 16, 2048, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(kernels.attention(q, k, v).float(), expected, rtol=2e-2, atol=2e-2)
    # FlashAttention's FLOP count for the forward pass: 4 * batch * heads * seq_q * seq_k * head_dim.
    flops = 4 * 1 * 16 * 2048 * 2048 * 128
    kernel_benchmark.measure(kernels.attention, args=(q, k, v), flops=flops, device="cuda", dtype="bf16",
                             reference=expected, tolerance=2e-2)  # fmt: skip
    if not kernel_benchmark.disabled:
        assert kernel_benchmark.result.flops_per_s > 0
