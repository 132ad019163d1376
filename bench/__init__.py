"""zhisuan's harness: check a kernel against a reference, time it, report it against the peak.

import bench
r = bench.measure(lambda: my_kernel(x), flops=2 * M * N * K, device="cuda", dtype="bf16")
print(r.median_s, r.flops_per_s, r.pct_peak)          # every sample is in r.samples_s
results = bench.run("matmul", backends=["cpp", "torch"], suite="llama3-8b")
"""

from bench.results import Result, ResultWriter, read_results
from bench.runner import measure, run

__all__ = ["measure", "run", "Result", "ResultWriter", "read_results"]
