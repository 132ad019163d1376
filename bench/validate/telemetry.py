"""Clocks, temperature, power, throttling and ECC counts of a device, where they can be read.

Every reading is a dict with the same keys for every device kind:
    sm_clock_mhz, mem_clock_mhz, temp_c, power_w, throttle (list of reasons), ecc_corrected,
    ecc_uncorrected, and for CPUs load_1m (the host's load average) and cores,
plus "source" (where the numbers come from) and "unreadable": {field: why} for every field that
could not be read. A value is never guessed: an unreadable one is None, with its reason.

GPUs: NVML (pynvml, the nvidia-ml-py package), the device found by its UUID so CUDA_VISIBLE_DEVICES
does not mix devices up. CPUs: Linux procfs / sysfs (cpufreq or /proc/cpuinfo, thermal zones and
hwmon, RAPL energy counters, EDAC memory-controller error counts, /proc/loadavg); under a hypervisor
most of these are absent, which the reading says.
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
    "ecc_corrected",
    "ecc_uncorrected",
)


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


class GpuTelemetry:
    """NVML readings of one CUDA device (pynvml)."""

    def __init__(self, index: int):
        self.handle = None
        self.why_not = None
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            self.nvml = pynvml
        except ImportError:
            self.why_not = "pynvml is not installed (pip install 'zhisuan[gpu]')"
        except Exception as exc:  # NVML missing, no permission, a device NVML does not know
            self.why_not = f"NVML unusable: {type(exc).__name__}: {exc}"

    def read(self) -> dict:
        out = {name: None for name in FIELDS}
        out.update(source="NVML (pynvml)", unreadable={})
        if self.handle is None:
            out["unreadable"] = dict.fromkeys(FIELDS, self.why_not)
            return out
        nvml, h = self.nvml, self.handle
        readers = {
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
            "temp_c": lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
            "power_w": lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
            "throttle": lambda: throttle_reasons(nvml, nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
            "ecc_corrected": lambda: nvml.nvmlDeviceGetTotalEccErrors(
                h, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_VOLATILE_ECC
            ),
            "ecc_uncorrected": lambda: nvml.nvmlDeviceGetTotalEccErrors(
                h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
            ),
        }
        for name, reader in readers.items():
            try:
                out[name] = reader()
            except Exception as exc:  # e.g. NVML_ERROR_NOT_SUPPORTED (ECC off, a field this GPU lacks)
                out["unreadable"][name] = f"{type(exc).__name__}: {exc}"
        return out

    def compute_pids(self) -> tuple[list[int] | None, str | None]:
        """(process ids computing on this GPU, None), or (None, why they cannot be read)."""
        if self.handle is None:
            return None, self.why_not
        try:
            processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception as exc:  # NVML_ERROR_NOT_SUPPORTED, no permission
            return None, f"{type(exc).__name__}: {exc}"
        return [p.pid for p in processes], None


# NVML's clock-throttle reason bits, by the names pynvml gives them.
_THROTTLE_NAMES = {
    "nvmlClocksThrottleReasonGpuIdle": "idle",
    "nvmlClocksThrottleReasonApplicationsClocksSetting": "applications clocks",
    "nvmlClocksThrottleReasonSwPowerCap": "software power cap",
    "nvmlClocksThrottleReasonHwSlowdown": "hardware slowdown",
    "nvmlClocksThrottleReasonSyncBoost": "sync boost",
    "nvmlClocksThrottleReasonSwThermalSlowdown": "software thermal slowdown",
    "nvmlClocksThrottleReasonHwThermalSlowdown": "hardware thermal slowdown",
    "nvmlClocksThrottleReasonHwPowerBrakeSlowdown": "hardware power brake",
    "nvmlClocksThrottleReasonDisplayClockSetting": "display clock setting",
}


def throttle_reasons(nvml, mask: int) -> list[str]:
    """The names of the bits set in an NVML throttle-reason mask ([] when the clocks run free)."""
    names = []
    for attr, label in _THROTTLE_NAMES.items():
        bit = getattr(nvml, attr, None)
        if bit is not None and mask & bit:
            names.append(label)
    return names


def reader_for(device) -> CpuTelemetry | GpuTelemetry:
    """The telemetry reader of a zhisuan.bench.core.chips.Device."""
    if device.kind == "cuda":
        import torch

        return GpuTelemetry(torch.device(device.torch_device).index or 0)
    return CpuTelemetry()
