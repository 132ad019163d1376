"""Telemetry from the vendors' management tools: npu-smi (Huawei Ascend), amd-smi, rocm-smi and
Hygon's hy-smi (ROCm GPUs and DCUs). Each tool runs as a subprocess with a timeout; its text is
parsed by a pure function (parse_*), tested on recorded outputs in tests/data/telemetry/.

Which device a tool reads must be the torch device measured:
  - npu-smi: torch's npu:k is the k-th visible chip (ASCEND_RT_VISIBLE_DEVICES, when set, lists the
    chips' logic IDs); `npu-smi info -m` maps a logic ID to the (NPU ID, Chip ID) that its other
    queries take. A 910C package is two chips (dies), each its own torch device.
  - amd-smi: selected by PCI bus ID when torch reports one, else by index.
  - rocm-smi / hy-smi: selected by index.
An index is trusted only when no *_VISIBLE_DEVICES variable renumbers the devices; otherwise
every field says that the device could not be identified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from zhisuan.bench.validate.telemetry import FIELDS, UnreadableTelemetry, blank

TIMEOUT_S = 10.0
ROCM_VISIBLE = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
NO_HEALTH = "{tool} reports no health summary (the throttle and ECC fields stand for it)"


def run_tool(argv: list[str]) -> str:
    """The tool's standard output; RuntimeError with the reason when it fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{' '.join(argv)}: {type(exc).__name__}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {tail[0]}")
    return done.stdout


def first_known(*values):
    """The first value that is not None (a reading of 0 counts)."""
    return next((v for v in values if v is not None), None)


def number(text) -> float | None:
    """The first number in text ('93.4', '(1700Mhz)', '49.0C'), None for '-', 'N/A' and the like."""
    match = re.search(r"-?\d+(?:\.\d+)?", str(text))
    return float(match.group()) if match else None


# ---- npu-smi (Huawei Ascend) ------------------------------------------------------------------

_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
NPU_HEALTH = ("OK", "Warning", "Alarm", "Critical", "UNKNOWN")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_npu_smi_info(text: str) -> tuple[dict[tuple[int, int], dict], dict[tuple[int, int], list[int]]]:
    """`npu-smi info`: ({(npu, chip): {name, health, power_w, temp_c, aicore_pct, hbm_used_mb,
    hbm_total_mb, bus_id}}, {(npu, chip): [process ids]}).

    The table has two rows per chip: "NPU Name | Health | Power(W) Temp(C) Hugepages" and
    "Chip [Phy-ID] | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB)"; the process table after it
    has "NPU Chip | Process id | Process name | Process memory(MB)". A 910C prints one pair per
    die, with '-' for the power of the second.
    """
    chips: dict[tuple[int, int], dict] = {}
    processes: dict[tuple[int, int], list[int]] = {}
    pending = None  # the first row of a chip, waiting for its second
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = _cells(line)
        head = cells[0].split()
        if len(cells) == 3 and len(head) >= 2 and head[0].isdigit() and cells[1] in NPU_HEALTH:
            power, temp = (cells[2].split() + [None, None])[:2]
            pending = {"npu": int(head[0]), "name": " ".join(head[1:]), "health": cells[1],
                       "power_w": number(power), "temp_c": number(temp)}  # fmt: skip
        elif len(cells) == 3 and head and head[0].isdigit() and _BUS_ID.match(cells[1]) and pending:
            usage = [number(v) for v in re.findall(r"[-\d.]+", cells[2])]
            chip = {**pending, "chip": int(head[0]), "bus_id": cells[1].lower()}
            if len(usage) >= 5:
                chip.update(aicore_pct=usage[0], hbm_used_mb=usage[3], hbm_total_mb=usage[4])
            chips[(pending["npu"], chip["chip"])] = chip
            pending = None
        elif len(cells) == 4 and len(head) == 2 and all(h.isdigit() for h in head) and cells[1].isdigit():
            processes.setdefault((int(head[0]), int(head[1])), []).append(int(cells[1]))
    return chips, processes


def parse_npu_smi_mapping(text: str) -> dict[int, tuple[int, int]]:
    """`npu-smi info -m`: {chip logic ID: (NPU ID, Chip ID)}; rows without a logic ID (the MCU) left out.

    Columns: "NPU ID  Chip ID  Chip Logic ID  [Chip Phy-ID]  Chip Name", the name possibly with spaces.
    """
    mapping = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit() and parts[1].isdigit() and parts[2].isdigit():
            mapping[int(parts[2])] = (int(parts[0]), int(parts[1]))
    return mapping


def parse_colon_fields(text: str) -> dict[str, str]:
    """'Key   : value' lines (npu-smi info -t ...) as {key: value}; the first of a repeated key wins."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def npu_logic_id(index: int) -> int | None:
    """The chip logic ID of torch's npu:index (None when ASCEND_RT_VISIBLE_DEVICES cannot say)."""
    visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if not visible:
        return index
    listed = [part.strip() for part in visible.split(",") if part.strip()]
    if index >= len(listed) or not listed[index].isdigit():
        return None
    return int(listed[index])


class NpuSmiTelemetry:
    """One Ascend chip through npu-smi: the summary table (health, power, temperature, processes)
    and `-t common` (the AI Core clock)."""

    def __init__(self, index: int, tool: str = "npu-smi"):
        self.tool = tool
        self.where: tuple[int, int] | None = None
        self.why_not = None
        logic = npu_logic_id(index)
        try:
            mapping = parse_npu_smi_mapping(run_tool([tool, "info", "-m"]))
        except RuntimeError as exc:
            self.why_not = str(exc)
            return
        if logic is None or logic not in mapping:
            self.why_not = f"npu:{index} (chip logic ID {logic}) is not in `{tool} info -m`"
            return
        self.where = mapping[logic]

    def read(self) -> dict:
        out = blank(self.tool)
        why = out["unreadable"]
        if self.where is None:
            out["unreadable"] = dict.fromkeys(FIELDS, self.why_not)
            return out
        npu, chip = self.where
        try:
            summary = parse_npu_smi_info(run_tool([self.tool, "info"]))[0].get(self.where, {})
            common = parse_colon_fields(
                run_tool([self.tool, "info", "-t", "common", "-i", str(npu), "-c", str(chip)])
            )
        except RuntimeError as exc:
            out["unreadable"] = dict.fromkeys(FIELDS, str(exc))
            return out
        out["sm_clock_mhz"] = number(common.get("Aicore curFreq(MHZ)"))
        out["max_clock_mhz"] = number(common.get("Aicore Freq(MHZ)"))
        out["temp_c"] = first_known(number(common.get("Temperature(C)")), summary.get("temp_c"))
        out["power_w"] = first_known(number(common.get("NPU Real-time Power(W)")), summary.get("power_w"))
        out["health"] = summary.get("health")
        missing = {
            "sm_clock_mhz": "no 'Aicore curFreq(MHZ)' in `npu-smi info -t common`",
            "temp_c": "npu-smi shows no temperature for this chip",
            "power_w": "npu-smi shows no power for this chip (a 910C reports it on its first die)",
            "health": f"NPU {npu} chip {chip} is not in the `npu-smi info` table",
        }
        for name, reason in missing.items():
            if out[name] is None:
                why[name] = reason
        why["mem_clock_mhz"] = "npu-smi -t common reports no memory clock"
        why["throttle"] = "npu-smi reports no throttle reasons"
        why["ecc_corrected"] = why["ecc_uncorrected"] = "npu-smi's ECC counters (-t ecc) are not read here"
        return out

    def compute_pids(self) -> tuple[list[int] | None, str | None]:
        if self.where is None:
            return None, self.why_not
        try:
            return parse_npu_smi_info(run_tool([self.tool, "info"]))[1].get(self.where, []), None
        except RuntimeError as exc:
            return None, str(exc)


# ---- amd-smi (ROCm) ---------------------------------------------------------------------------


def _value(entry):
    """amd-smi's JSON figure ({"value": v, "unit": u}, a bare number, or "N/A") as a number or None."""
    if isinstance(entry, dict):
        entry = entry.get("value")
    return float(entry) if isinstance(entry, int | float) and not isinstance(entry, bool) else None


def parse_amd_smi_metric(text: str) -> dict:
    """`amd-smi metric -p -c -t -e --json` of one GPU: the reading's fields (None where 'N/A').

    The JSON is a list with one object per GPU ({"gpu": id, "power": {...}, "clock": {...},
    "temperature": {...}, "ecc": {...}}); each figure is {"value": v, "unit": u} or "N/A".
    """
    data = json.loads(text)
    gpu = data[0] if isinstance(data, list) else data
    power, clock = gpu.get("power") or {}, gpu.get("clock") or {}
    temperature, ecc = gpu.get("temperature") or {}, gpu.get("ecc") or {}
    throttle = power.get("throttle_status")
    return {
        "power_w": _value(power.get("socket_power")),
        "sm_clock_mhz": _value((clock.get("gfx_0") or {}).get("clk")),
        "mem_clock_mhz": _value((clock.get("mem_0") or {}).get("clk")),
        # The hotspot (junction) sensor is the one clocks throttle on; MI300 reports no edge sensor.
        "temp_c": first_known(_value(temperature.get("hotspot")), _value(temperature.get("edge"))),
        "throttle": {"THROTTLED": ["throttled"], "UNTHROTTLED": []}.get(throttle),
        "ecc_corrected": _value(ecc.get("total_correctable_count")),
        "ecc_uncorrected": _value(ecc.get("total_uncorrectable_count")),
    }


class AmdSmiTelemetry:
    def __init__(self, selector: str, tool: str = "amd-smi"):
        self.selector, self.tool = selector, tool

    def read(self) -> dict:
        out = blank(self.tool)
        try:
            text = run_tool([self.tool, "metric", "-g", self.selector, "-p", "-c", "-t", "-e", "--json"])
            values = parse_amd_smi_metric(text)
        except (RuntimeError, ValueError, LookupError, AttributeError) as exc:
            out["unreadable"] = dict.fromkeys(FIELDS, f"{self.tool}: {type(exc).__name__}: {exc}")
            return out
        out.update(values)
        for name in FIELDS:
            if out[name] is None:
                out["unreadable"][name] = f"{self.tool} reports N/A for it on GPU {self.selector}"
        out["unreadable"]["health"] = NO_HEALTH.format(tool=self.tool)
        return out

    def compute_pids(self) -> tuple[list[int] | None, str | None]:
        return None, f"processes are not read from {self.tool} here"


# ---- rocm-smi and hy-smi (ROCm, Hygon DTK) ------------------------------------------------------

ROCM_SMI_TEMPERATURES = ("Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)")
ROCM_SMI_POWER = ("Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)")


def parse_rocm_smi(text: str, index: int) -> dict:
    """`rocm-smi -d N --showtemp --showpower --showclocks --json` (hy-smi takes the same flags): the
    reading's fields from the object "card<N>", whose values are strings ("49.0", "(1700Mhz)")."""
    card = json.loads(text).get(f"card{index}")
    if card is None:
        raise LookupError(f"no card{index} in the output")

    def first(keys):
        return next((number(card[k]) for k in keys if number(card.get(k, "")) is not None), None)

    return {
        "temp_c": first(ROCM_SMI_TEMPERATURES),
        "power_w": first(ROCM_SMI_POWER),
        "sm_clock_mhz": first(("sclk clock speed:",)),
        "mem_clock_mhz": first(("mclk clock speed:",)),
    }


class RocmSmiTelemetry:
    def __init__(self, index: int, tool: str):
        self.index, self.tool = index, tool

    def read(self) -> dict:
        out = blank(self.tool)
        argv = [self.tool, "-d", str(self.index), "--showtemp", "--showpower", "--showclocks", "--json"]
        try:
            out.update(parse_rocm_smi(run_tool(argv), self.index))
        except (RuntimeError, ValueError, LookupError, AttributeError) as exc:
            out["unreadable"] = dict.fromkeys(FIELDS, f"{self.tool}: {type(exc).__name__}: {exc}")
            return out
        for name in ("temp_c", "power_w", "sm_clock_mhz", "mem_clock_mhz"):
            if out[name] is None:
                out["unreadable"][name] = f"{self.tool} printed no {name} for card{self.index}"
        out["unreadable"]["throttle"] = f"{self.tool}'s summary flags carry no throttle reasons"
        out["unreadable"]["health"] = NO_HEALTH.format(tool=self.tool)
        for name in ("ecc_corrected", "ecc_uncorrected"):
            out["unreadable"][name] = f"{self.tool}'s ECC report (--showrasinfo) is not read here"
        return out

    def compute_pids(self) -> tuple[list[int] | None, str | None]:
        return None, f"processes are not read from {self.tool} here"


# ---- choosing the source -----------------------------------------------------------------------


def renumbered(variables: tuple[str, ...]) -> str | None:
    """The first of the variables that is set (the devices torch sees are then renumbered)."""
    return next((name for name in variables if os.environ.get(name)), None)


def reader_for(device_type: str, index: int, bus_id: str | None = None, which=shutil.which):
    """The telemetry reader of torch's device_type:index (not NVIDIA: that is NVML's); `which`
    finds a tool on PATH (a test passes its own)."""
    if device_type == "npu":
        if which("npu-smi"):
            return NpuSmiTelemetry(index)
        return UnreadableTelemetry("npu-smi is not on PATH (it comes with the Ascend driver)")
    if device_type != "cuda":
        return UnreadableTelemetry(f"zhisuan reads no telemetry tool for {device_type} devices")
    hidden = renumbered(ROCM_VISIBLE)
    if which("amd-smi"):
        if bus_id:
            return AmdSmiTelemetry(bus_id)
        if not hidden:
            return AmdSmiTelemetry(str(index))
    elif which("rocm-smi") or which("hy-smi"):
        if not hidden:
            return RocmSmiTelemetry(index, "rocm-smi" if which("rocm-smi") else "hy-smi")
    else:
        return UnreadableTelemetry("none of amd-smi, rocm-smi, hy-smi is on PATH")
    return UnreadableTelemetry(
        f"{hidden} renumbers the devices and torch reports no PCI bus ID to find this one"
    )
