"""Clocks, temperature, power, throttling, health and ECC counts of a device, where they can be read.

Every reading is a dict with the same keys for every device kind:
    sm_clock_mhz (the compute clock: SMs, CUs, Ascend AI Cores), mem_clock_mhz, temp_c, power_w,
    throttle (list of reasons), health (the vendor tool's summary: "OK", "Warning", ...),
    ecc_corrected, ecc_uncorrected, and for CPUs load_1m (the host's load average) and cores,
plus "source" (where the numbers come from) and "unreadable": {field: why} for every field that
could not be read. A value is never guessed: an unreadable one is None, with its reason.

Sources, chosen by reader_for from the device type:
    NVIDIA GPUs   NVML (telemetry_nvml)
    ROCm GPUs     amd-smi, else rocm-smi, else Hygon's hy-smi (telemetry_smi)
    Ascend NPUs   npu-smi (telemetry_smi)
    CPUs          Linux procfs / sysfs (cpufreq or /proc/cpuinfo, thermal zones and hwmon, RAPL
                  energy counters, EDAC memory-controller error counts, /proc/loadavg); under a
                  hypervisor most of these are absent, which the reading says.
Any other device type gets a reader whose every field says why nothing is read.
"""

from __future__ import annotations

import glob
import os
import time

FIELDS = (
    "sm_clock_mhz",
    "mem_clock_mhz",
    "temp_c",
    "power_w",
    "throttle",
    "health",
    "ecc_corrected",
    "ecc_uncorrected",
)


def blank(source: str) -> dict:
    """A reading with every field None and nothing said yet about why."""
    return {**dict.fromkeys(FIELDS), "source": source, "unreadable": {}}


class UnreadableTelemetry:
    """The reader of a device nothing can be read from; every field says why."""

    def __init__(self, why: str):
        self.why_not = why

    def read(self) -> dict:
        out = blank("none")
        out["unreadable"] = dict.fromkeys(FIELDS, self.why_not)
        return out

    def compute_pids(self) -> tuple[list[int] | None, str | None]:
        return None, self.why_not


def _read_text(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


class CpuTelemetry:
    """Readings of this host's CPU; power from RAPL energy between two readings."""

    def __init__(self):
        self._energy: tuple[float, float] | None = None  # (joules, time) of the previous reading

    def read(self) -> dict:
        out = {name: None for name in FIELDS}
        out.update(source="linux procfs/sysfs", unreadable={}, load_1m=None, cores=os.cpu_count())
        why = out["unreadable"]
        out["sm_clock_mhz"], source = self._clock()
        if out["sm_clock_mhz"] is None:
            why["sm_clock_mhz"] = "neither cpufreq nor /proc/cpuinfo reports a clock"
        elif source == "cpuinfo":
            out["clock_source"] = (
                "/proc/cpuinfo 'cpu MHz' (under a hypervisor: the nominal clock, not the real one)"
            )
        else:
            out["clock_source"] = "cpufreq scaling_cur_freq"
        why["mem_clock_mhz"] = "not exposed by Linux for CPUs"
        out["temp_c"] = self._temperature()
        if out["temp_c"] is None:
            why["temp_c"] = "no CPU sensor in /sys/class/hwmon or /sys/class/thermal (usual in a VM)"
        out["power_w"], power_why = self._power()
        if power_why:
            why["power_w"] = power_why
        why["throttle"] = "no throttle-reason interface for CPUs in Linux"
        why["health"] = "no health summary for CPUs in Linux (the EDAC error counts stand for it)"
        ce, ue = self._edac()
        if ce is None:
            why["ecc_corrected"] = why["ecc_uncorrected"] = (
                "no EDAC memory controller in /sys/devices/system/edac"
            )
        out["ecc_corrected"], out["ecc_uncorrected"] = ce, ue
        load = _read_text("/proc/loadavg")
        if load:
            out["load_1m"] = float(load.split()[0])
        else:
            why["load_1m"] = "/proc/loadavg unreadable"
        return out

    @staticmethod
    def _clock() -> tuple[float | None, str]:
        freqs = []
        for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
            text = _read_text(path)
            if text and text.isdigit():
                freqs.append(int(text) / 1000)
        if freqs:
            return sum(freqs) / len(freqs), "cpufreq"
        text = _read_text("/proc/cpuinfo") or ""
        mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
        return (sum(mhz) / len(mhz), "cpuinfo") if mhz else (None, "")

    @staticmethod
    def _temperature() -> float | None:
        for hwmon in glob.glob("/sys/class/hwmon/hwmon*"):
            if _read_text(os.path.join(hwmon, "name")) in ("coretemp", "k10temp", "zenpower"):
                text = _read_text(os.path.join(hwmon, "temp1_input"))
                if text and text.lstrip("-").isdigit():
                    return int(text) / 1000
        for zone in glob.glob("/sys/class/thermal/thermal_zone*"):
            kind = _read_text(os.path.join(zone, "type")) or ""
            if "pkg" in kind or "cpu" in kind.lower() or "x86" in kind:
                text = _read_text(os.path.join(zone, "temp"))
                if text and text.lstrip("-").isdigit():
                    return int(text) / 1000
        return None

    def _power(self) -> tuple[float | None, str | None]:
        paths = glob.glob("/sys/class/powercap/intel-rapl:[0-9]*/energy_uj")
        if not paths:
            return None, "no RAPL energy counter in /sys/class/powercap"
        texts = [_read_text(p) for p in paths]
        if not all(t and t.isdigit() for t in texts):
            return None, "RAPL energy counters are not readable (root only on recent kernels)"
        now, joules = time.monotonic(), sum(int(t) for t in texts) / 1e6
        previous, self._energy = self._energy, (joules, now)
        if previous is None or joules < previous[0] or now <= previous[1]:
            return None, "power needs two readings of the energy counter: this is the first"
        return (joules - previous[0]) / (now - previous[1]), None

    @staticmethod
    def _edac() -> tuple[int | None, int | None]:
        controllers = glob.glob("/sys/devices/system/edac/mc/mc[0-9]*")
        if not controllers:
            return None, None
        ce = ue = 0
        for mc in controllers:
            ce += int(_read_text(os.path.join(mc, "ce_count")) or 0)
            ue += int(_read_text(os.path.join(mc, "ue_count")) or 0)
        return ce, ue


def reader_for(device):
    """The telemetry reader of a zhisuan.bench.core.chips.Device, by its type (see the module's doc)."""
    from zhisuan.bench.core import accel

    if device.kind == "cpu":
        return CpuTelemetry()
    import torch

    from zhisuan.bench.validate import telemetry_smi

    index = accel.index_of(torch.device(device.torch_device))
    if device.kind == "cuda" and not accel.rocm_build():
        from zhisuan.bench.validate.telemetry_nvml import GpuTelemetry

        return GpuTelemetry(index)
    return telemetry_smi.reader_for(device.kind, index, device.properties.get("pci_bus_id"))
