"""The device-dependent decisions for a device type that is neither cpu nor cuda, driven by a
stand-in plug-in (tests/standin/zhisuan_standin_npu.py registers 'npu' as torch_npu would).

The plug-in's registration with torch cannot be undone, so tests/standin/observe.py runs it in a
process of its own and prints what zhisuan decided; each test here checks one decision. No Ascend
NPU was involved: this shows the code paths, not that they work on the hardware.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

OBSERVE = Path(__file__).parent / "standin" / "observe.py"


@pytest.fixture(scope="module")
def seen():
    done = subprocess.run([sys.executable, str(OBSERVE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_plugin_is_imported_on_demand_and_its_devices_are_found(seen):
    assert not seen["plugin_loaded_before"] and seen["check"] == "npu:1"
    assert seen["default_type"] == "npu"
    assert seen["available_devices"] == ["cpu", "npu:0", "npu:1"]
    assert seen["check_out_of_range"] == "device 'npu:2': this machine has 2 npu device(s), npu:0 to npu:1"


def test_detection_matches_the_exact_soc_name_and_never_a_neighbour(seen):
    known, unknown = seen["detect0"], seen["detect1"]
    assert known["kind"] == "npu" and known["torch_device"] == "npu:0" and known["name"] == "Ascend910B3"
    assert known["spec"] == "ascend-910b3" and known["bf16"] == 294.9
    assert known["properties"]["cube_cores"] == 20 and known["properties"]["memory_bytes"] == 64 << 30
    # A real 910C SoC name with no entry: no figure borrowed from the 9391 die or a 910B.
    assert unknown["spec"] is None and unknown["bf16"] is None
    assert (
        "'Ascend910_9392'" in unknown["why_no_peak"] and "not in the peak database" in unknown["why_no_peak"]
    )


def test_timing_uses_the_device_events_on_the_device_stream(seen):
    assert seen["timer"] == "EventTimer"
    # The stand-in clock moves only with the work: 2.5 ms per call, read from the events.
    assert seen["samples"] == [0.0025] * 4 and seen["measure"] == [0.001] * 3
    assert seen["timer_calls"] == [["record", 1]] * 8 + [["synchronize", 1]]  # one sync, at the end
    assert seen["last_output"] == "2.5 ms of work"


def test_memory_comes_from_torch_accelerator(seen):
    assert seen["memory"] == [60 << 30, "free on npu:1 (torch.accelerator.get_memory_info)"]


def test_collectives_take_the_backend_the_plugin_registered(seen):
    assert seen["dist_backend"] == "hccl"
    assert seen["collective_plan"] == {"device": "npu", "backend": "hccl"}
    assert seen["dist_backend_missing"].endswith("name one with --backend")


def test_only_torchs_own_backends_run_and_the_others_say_why(seen):
    assert seen["run_backends"] == ["matmul/torch"] and seen["run_dtypes"] == ["torch.bfloat16"]
    assert seen["run_skipped"]["matmul/triton bf16"] == "triton does not run on npu (runs on: cpu, cuda)"
    assert seen["level_quick"] == [4096, 8192] and seen["suite_default"] == [4096, 8192]


def test_telemetry_reads_npu_smi(seen):
    assert seen["telemetry_reader"] == "NpuSmiTelemetry"
    reading = seen["telemetry"]
    assert reading["source"] == "npu-smi" and reading["health"] == "OK"
    assert (reading["sm_clock_mhz"], reading["max_clock_mhz"]) == (800.0, 1800.0)
    assert (reading["temp_c"], reading["power_w"]) == (46.0, 93.4)
    assert reading["throttle"] is None and "throttle" in reading["unreadable"]
    assert seen["telemetry_pids"] == [[], None]
