"""`zhisuan validate`: hardware validation of a node or a cluster, per device, with verdicts.

Checks (one module each), in the order they run: matmul (maximum achievable FLOP/s per dtype over a
shape sweep), stream (STREAM copy/scale/add/triad with numba), attention (one standard shape),
interconnect (all_reduce busbw across the ranks; host <-> device copies on GPUs), integrity
(bitwise-repeatable matmul, and across ranks), burn-in (sustained load, --level burn-in). Every
check verifies its output against a reference before it times anything. Levels and sizes:
levels.py; thresholds: thresholds.py and bench/data/thresholds.toml; ranks and the cluster view:
session.py, spawn.py, cluster.py.

Result record contract (JSON Lines through zhisuan.bench.core.results.ResultWriter, written as checks finish)
---------------------------------------------------------------------------------------------
Every check writes zhisuan.bench.core.results.Result records with kind="validate" and
  op        the check id: "matmul", "stream-copy", "stream-scale", "stream-add", "stream-triad",
            "attention", "all_reduce", "h2d", "d2h", "integrity", "burn-in"
            (a check that crashed writes its group's name: "stream", "interconnect", ...)
  backend, shape, dtype, device, device_name   as for any result; dtype "tf32" means fp32 storage
            with TF32 math; one record per (check, dtype) and rank: for matmul and attention the
            fastest backend (and shape), the others in extra
  samples_s, median_s, flops, bytes, flops_per_s, bytes_per_s, pct_peak, pct_measured_peak, check
            filled as usual (zhisuan.bench.core.metrics) where the check times something
  extra = {
    "check":     human title,
    "verdict":   "PASS" | "WARN" | "FAIL" | "SKIP",
    "value":     float (None when nothing could be measured), in
    "unit":      "GFLOP/s" (CPU) | "TFLOP/s" (GPU) | "GB/s" | "differing repeats" | "ranks",
    "threshold": {"pass": float, "warn": float, "basis": str, "reference": float | None,
                  "compare": ">=" | "<=", "source": str} or None when no rule applies.
                 ">=": PASS when value >= pass * reference, WARN when >= warn * reference, else FAIL;
                 pass and warn are fractions of `reference` (the basis figure in `unit`), and basis
                 says what it is, e.g. "fraction of datasheet bf16 989 TFLOP/s [datasheet]".
                 "<=": a count (integrity): PASS when value <= pass (0), else FAIL.
    "ratio":     value / reference (when judged),
    "reason":    str, why this verdict,
    "remeasure": present when the first measurement fell below the warn fraction: {"first_ratio",
                 "second_ratio" (None when the check cannot be re-measured alone), "busy": [why the
                 host counts as busy], "host": the readings (zhisuan.bench.validate.hostload)}; value,
                 ratio and the timing are then the second measurement's. Such a check FAILs only
                 when the shortfall persisted on a quiet host, else it is a WARN "inconclusive"
                 (zhisuan.bench.validate.remeasure),
    "host": hostname, "rank": int (-1 for fleet-wide records), "world": int,
    "sizes":     "real" | "test" (the tests' tiny override: never a real measurement),
    "telemetry": {"sm_clock_mhz", "mem_clock_mhz", "temp_c", "power_w", "throttle",
                  "ecc_corrected", "ecc_uncorrected", "source", "unreadable": {field: why}, ...},
  } and per check:
    matmul       "sweep": [{backend, shape, median_s, flops_per_s, pct_peak, pct_measured_peak,
                 max_abs_err, tolerance, passed, status, error}], "backends": {name: {best, median,
                 unit}}, "median_over_shapes", "skipped_backends": {name: why}
    stream-*     "array_bytes", "cache_bytes", "past_cache", "threads", "ceiling_gbps" (CPU: the
                 all-core copy, the basis) or "torch_copy_gbps" (GPU)
    attention    "backends": {name: value}, "skipped_backends"
    all_reduce   "algbw_gbps", "busbw_gbps", "bus_factor", "wrong"
    integrity    "repeats", "digest", "config", "mismatches": [str]; rank 0 adds one record per
                 configuration shared by several ranks (rank -1, "ranks", "digests")
    burn-in      "timeline": [{"t": s, "tflops": x, "sm_clock_mhz", "temp_c", "power_w",
                 "throttle"}], "burst", "sustained", "windows", "window_s", "duration_s",
                 "requested_duration_s", "interrupted", "mismatches"
The run ends with one record op="summary" (kind="validate") whose extra holds
  {"verdict": overall (FAIL > WARN > PASS; stragglers make a PASS a WARN), "level", "duration_s",
   "interrupted", "margin_pct", "counts": {verdict: n},
   "devices": [{"host", "rank", "device", "device_name", "verdict"}],
   "stragglers": [{"check", "host", "rank", "value", "median", "unit", "deficit_pct"}],
   "cluster": {"dtype", "ranks", "measured_ranks", "achieved_pflops", "nameplate_pflops" (or None
               with "nameplate_reason"), "nameplate_status", "pct_of_nameplate"}}.
Exit code: 1 when any record or the summary is a FAIL, else 0: a wrong output, a crash, or a
shortfall that persisted on a quiet host; a node under a neighbour's load is WARN, exit 0.
"""
