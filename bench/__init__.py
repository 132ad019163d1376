"""zhisuan's harness: check a kernel against a reference, time it, report it against the peak.

import bench
r = bench.measure(lambda: my_kernel(x), flops=2 * M * N * K, device="cuda", dtype="bf16")
print(r.median_s, r.flops_per_s, r.pct_peak)  # every sample is in r.samples_s
results = bench.run("matmul", backends=["cpp", "torch"], suite="llama3-8b")

The names below load on first use, so `import bench.<module>` (every zhisuan command does) does not
pay for torch and the runner unless it needs them.
"""

import importlib

_EXPORTS = {
    "measure": "bench.runner",
    "run": "bench.runner",
    "Result": "bench.results",
    "ResultWriter": "bench.results",
    "read_results": "bench.results",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
