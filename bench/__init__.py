"""zhisuan's harness: check a kernel against a reference, time it, report it against the peak.

from zhisuan import bench
r = zhisuan.bench.measure(lambda: my_kernel(x), flops=2 * M * N * K, device="cuda", dtype="bf16")
print(r.median_s, r.flops_per_s, r.pct_peak)  # every sample is in r.samples_s
results = zhisuan.bench.run("matmul", backends=["cpp", "torch"], suite="llama3-8b")

The names below load on first use, so `import bench.<module>` (every zhisuan command does) does not
pay for torch and the runner unless it needs them.
"""

import importlib

_EXPORTS = {
    "measure": "zhisuan.bench.harness.runner",
    "run": "zhisuan.bench.harness.runner",
    "Result": "zhisuan.bench.core.results",
    "ResultWriter": "zhisuan.bench.core.result_files",
    "read_results": "zhisuan.bench.core.result_files",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zhisuan.bench' has no attribute {name!r}")
