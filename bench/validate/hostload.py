"""Is this host busy? Evidence, read while a check runs, that other work competes with it.

A shortfall measured while something else used the machine says nothing about the hardware, so a
check that falls short looks at the host before it FAILs (zhisuan.bench.validate.remeasure). The
signals, each compared with a stated limit:

  steal        CPU time the hypervisor gave to other guests (/proc/stat "steal"), as a share of
               all CPU time since the check began: above STEAL_LIMIT (5%)
  others       CPU time of other processes on this host since the check began (/proc/stat's busy
               time less this process's own, time.process_time), in cores: above what the host's
               other ranks of this run may use plus OTHERS_MARGIN (10%) of the cores
  load         the 1-minute load average above the core count + 0.5 (it counts our threads too)
  fma probe    (CPU) the FMA probe of zhisuan.kernels._C run in PROBE_WINDOWS short windows: its
               threads got under PROBE_MIN_SHARE (90%) of the wall time on their cores in some
               window (its cpu_share), or its wall-clock rate spread over PROBE_MAX_SPREAD (10%)
               across the windows, where a quiet core repeats itself within a few percent
  gpu          (accelerators) other processes computing on this device (NVML, npu-smi: where the
               device's telemetry source lists them; the keys keep the name gpu_*)

CPU checks use steal, others, load and the probe; GPU checks use steal and the GPU's processes.
Every reading goes into the record; an unreadable one says why and counts as quiet.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

STEAL_LIMIT = 0.05
OTHERS_MARGIN = 0.10
LOAD_MARGIN = 0.5
PROBE_WINDOWS = 4
PROBE_WINDOW_S = 0.05
PROBE_MIN_SHARE = 0.90
PROBE_MAX_SPREAD = 0.10


@dataclass(frozen=True)
class CpuTimes:
    """One reading of the host's CPU time (seconds, all CPUs) and of this process's own."""

    busy_s: float  # user, nice, system, irq, softirq: time spent running something in this guest
    steal_s: float
    total_s: float  # busy, steal, idle and iowait
    own_s: float  # this process, every thread
    wall_s: float  # a monotonic clock

    @classmethod
    def now(cls) -> CpuTimes | None:
        """None where /proc/stat cannot be read (not Linux)."""
        try:
            with open("/proc/stat") as fh:
                fields = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = user + nice + system + irq + softirq
        return cls(busy / tick, steal / tick, (busy + idle + iowait + steal) / tick, time.process_time(),
                   time.monotonic())  # fmt: skip


def window(start: CpuTimes | None, end: CpuTimes | None) -> dict:
    """Steal share and other processes' use of the CPUs (in cores) between two readings."""
    if start is None or end is None or end.total_s <= start.total_s or end.wall_s <= start.wall_s:
        return {"unreadable": {"steal": "/proc/stat unreadable or no time passed"}}
    total = end.total_s - start.total_s
    others = (end.busy_s - start.busy_s) - (end.own_s - start.own_s)
    return {
        "window_s": end.wall_s - start.wall_s,
        "steal_fraction": (end.steal_s - start.steal_s) / total,
        "others_cores": max(0.0, others) / (end.wall_s - start.wall_s),
    }


def load_average() -> dict:
    try:
        with open("/proc/loadavg") as fh:
            return {"load_1m": float(fh.read().split()[0])}
    except (OSError, ValueError, IndexError):
        return {"unreadable": {"load_1m": "/proc/loadavg unreadable"}}


def fma_probe() -> dict:
    """The FMA probe in PROBE_WINDOWS separate short windows: each one's CPU share and wall rate."""
    from zhisuan.kernels._ext import cpu_ext

    try:
        probe = cpu_ext().fma_probe
        runs = [probe(dtype="fp32", seconds=PROBE_WINDOW_S, windows=1) for _ in range(PROBE_WINDOWS)]
    except (ImportError, RuntimeError) as exc:
        return {"unreadable": {"fma_probe": f"{type(exc).__name__}: {exc}"}}
    rates = [run["wall_flops_per_s"] for run in runs]
    return {
        "fma_cpu_share": min(run["cpu_share"] for run in runs),
        "fma_spread": (max(rates) - min(rates)) / max(rates) if max(rates) > 0 else 0.0,
    }


def gpu_processes(telemetry) -> dict:
    """Other processes computing on the device that `telemetry` reads (NVML, npu-smi)."""
    pids, why = telemetry.compute_pids()
    if pids is None:
        return {"unreadable": {"gpu_processes": why}}
    # In a container NVML reports the host's process ids, where ours is not found: one is then us.
    others = [pid for pid in pids if pid != os.getpid()]
    if len(others) == len(pids) and pids:
        others = others[1:]
    return {"gpu_other_processes": len(others), "gpu_pids": pids}


def busy_reasons(evidence: dict, *, kind: str, cores: int, allowance_cores: float = 0.0) -> list[str]:
    """Why the host counts as busy (empty: quiet), from readings in `evidence`.

    cores: the logical CPUs (what /proc/stat's times and the load average count).
    allowance_cores: what the other ranks of this run on this host may use (they run alongside).
    """
    reasons = []
    steal = evidence.get("steal_fraction")
    if steal is not None and steal > STEAL_LIMIT:
        reasons.append(f"the hypervisor stole {100 * steal:.0f}% of CPU time (limit {100 * STEAL_LIMIT:g}%)")
    if kind == "cpu":
        others = evidence.get("others_cores")
        limit = allowance_cores + OTHERS_MARGIN * cores
        if others is not None and others > limit:
            reasons.append(f"other processes used {others:.2f} of {cores} cores (limit {limit:.2f})")
        load = evidence.get("load_1m")
        if load is not None and load > cores + LOAD_MARGIN:
            reasons.append(f"load average {load:.1f} on {cores} cores")
        share = evidence.get("fma_cpu_share")
        if share is not None and share < PROBE_MIN_SHARE:
            reasons.append(
                f"the FMA probe's threads ran {100 * share:.0f}% of the wall time (limit {100 * PROBE_MIN_SHARE:g}%)"
            )
        spread = evidence.get("fma_spread")
        if spread is not None and spread > PROBE_MAX_SPREAD:
            reasons.append(
                f"the FMA probe's rate varied {100 * spread:.0f}% across {PROBE_WINDOWS} windows (limit {100 * PROBE_MAX_SPREAD:g}%)"
            )
    others_on_gpu = evidence.get("gpu_other_processes")
    if kind != "cpu" and others_on_gpu:
        reasons.append(f"{others_on_gpu} other process(es) computing on the {kind} device")
    return reasons


def gather(kind: str, since: CpuTimes | None, telemetry, *, probe: bool) -> dict:
    """The readings for a device kind: the window since `since`, load, and probe or device processes."""
    evidence, unreadable = {}, {}
    parts = [window(since, CpuTimes.now()), load_average()]
    if kind == "cpu" and probe:
        parts.append(fma_probe())
    if kind != "cpu":
        parts.append(gpu_processes(telemetry))
    for part in parts:
        unreadable.update(part.pop("unreadable", {}))
        evidence.update(part)
    evidence["unreadable"] = unreadable
    return evidence
