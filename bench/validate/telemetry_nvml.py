"""NVML telemetry of an NVIDIA GPU (pynvml, the nvidia-ml-py package): clocks, temperature, power,
throttle reasons, ECC counts, and the processes computing on it. The device is found by its UUID,
so CUDA_VISIBLE_DEVICES does not mix devices up."""

from __future__ import annotations

from zhisuan.bench.validate.telemetry import FIELDS


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
        out["unreadable"]["health"] = (
            "NVML has no single health flag (the throttle and ECC fields stand for it)"
        )
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
