"""Drive zhisuan's device-dependent decisions with the stand-in 'npu' plug-in and print what it
decided, as JSON on the last line (tests/test_accel_standin.py runs this in a process of its own:
the plug-in's registration with torch cannot be undone)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PATH"] = f"{HERE / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.pop("ASCEND_RT_VISIBLE_DEVICES", None)

from zhisuan.bench.core import accel, chips, memory, timing  # noqa: E402
from zhisuan.bench.core.errors import UsageError  # noqa: E402

accel.PLUGINS["npu"] = accel.Plugin("zhisuan_standin_npu", "stand-in for Huawei Ascend", "hccl")


def error_of(call) -> str | None:
    try:
        call()
    except UsageError as exc:
        return str(exc)
    return None


seen: dict = {"plugin_loaded_before": "zhisuan_standin_npu" in sys.modules}
seen["check"] = accel.check("npu:1")  # imports the plug-in through accel.PLUGINS
import zhisuan_standin_npu as standin  # noqa: E402

seen["plugin_loaded_after"] = True
seen["check_out_of_range"] = error_of(lambda: accel.check("npu:2"))
seen["default_type"] = accel.default_type()
seen["available_devices"] = chips.available_devices()

# detection and the chip database
for index in (0, 1):
    device = chips.detect(f"npu:{index}")
    seen[f"detect{index}"] = {
        "kind": device.kind,
        "torch_device": device.torch_device,
        "name": device.name,
        "properties": device.properties,
        "spec": device.spec.id if device.spec else None,
        "bf16": device.peak("bf16").value if device.peak("bf16") else None,
        "why_no_peak": device.why_no_peak,
    }

# timing: device events on the device's stream, one synchronisation at the end
timer = timing.timer_for("npu:1")
seen["timer"] = type(timer).__name__
standin.CALLS.clear()
seen["samples"] = timer.run(lambda: standin.work(2.5), 4, None)
seen["timer_calls"] = [list(call) for call in standin.CALLS]
seen["last_output"] = timer.last_output
seen["measure"] = timing.measure(lambda: standin.work(1.0), device="npu:0", plan=timing.TimingPlan(iters=3))
seen["memory"] = list(memory.available_bytes("npu:1"))

# collectives: torch.distributed's default backend for the type, as the plug-in registered it
seen["dist_backend"] = accel.dist_backend("npu")
seen["dist_backend_missing"] = error_of(lambda: accel.dist_backend("meta"))
from zhisuan.bench.cli import build_parser  # noqa: E402
from zhisuan.bench.collectives.command import build_plan  # noqa: E402

plan = build_plan(build_parser().parse_args(["collective", "--device", "npu", "-b", "1K", "-e", "1K"]))
seen["collective_plan"] = {"device": plan.device, "backend": plan.backend}

# what runs where: torch's own backends only, the others with their reasons
from zhisuan.bench.harness.runner import plan_run  # noqa: E402

run_plan = plan_run(
    ["matmul", "attention"], {"matmul": [{"M": 7, "N": 97, "K": 1}], "attention": []}, None, "npu:0"
)
seen["run_backends"] = sorted({f"{case.op}/{b.name}" for case in run_plan.cases for b in case.backends})
seen["run_dtypes"] = sorted({str(case.dtype) for case in run_plan.cases})
seen["run_skipped"] = dict(run_plan.skipped)

from zhisuan.bench.validate import levels, telemetry  # noqa: E402
from zhisuan.bench.workloads.suites import suite_shapes  # noqa: E402

seen["level_quick"] = levels.plan_for("quick", "npu").matmul_sizes
seen["suite_default"] = [s.get("M") for s in suite_shapes("default", "matmul", "npu")]

# telemetry: npu-smi (the stand-in on PATH prints recorded outputs)
reader = telemetry.reader_for(chips.detect("npu:0"))
seen["telemetry_reader"] = type(reader).__name__
seen["telemetry"] = reader.read()
seen["telemetry_pids"] = list(reader.compute_pids())
print(json.dumps(seen, default=str))
