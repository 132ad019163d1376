"""The device-generic core on the CPU (the path CI runs), its one-line errors for devices this
machine or this torch lacks, and the rule that the generic core names no CUDA device.

The decisions for an accelerator that is neither cpu nor cuda are in test_accel_standin.py.
"""

import ast
import io
import tokenize
from pathlib import Path

import pytest
import torch

from zhisuan.bench.core import accel, chips, memory, timing
from zhisuan.bench.core.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
no_accelerator = pytest.mark.skipif(
    torch.accelerator.is_available(), reason="an accelerator is present: its errors differ"
)


def test_the_cpu_goes_through_the_generic_calls():
    assert accel.check("cpu") == "cpu" and accel.resolve(" cpu ") == torch.device("cpu")
    assert accel.missing("cpu") is None and accel.device_count("cpu") == 1
    assert accel.size_class("cpu") == "cpu" and accel.size_class("npu") == "accelerator"
    assert accel.dist_backend("cpu") == "gloo"
    accel.synchronize("cpu")  # nothing queued on the CPU: returns at once
    free, source = memory.available_bytes("cpu")
    assert free is None or free > 0
    assert "cpu" in chips.available_devices()


@no_accelerator
def test_without_an_accelerator_the_default_is_the_cpu():
    assert accel.default_type() == "cpu" and chips.available_devices() == ["cpu"]


def test_the_cpu_is_timed_by_the_host_clock_because_torch_events_do_not_record_there():
    assert isinstance(timing.timer_for("cpu"), timing.HostTimer)
    # torch 2.13 creates a CPU torch.Event but cannot record it; when it can, the CPU may take
    # EventTimer too, and this test says so.
    event = torch.Event(device="cpu", enable_timing=True)
    with pytest.raises(RuntimeError, match="cpu backend doesn't support events"):
        event.record()
    x = torch.randn(97, 1025, generator=torch.Generator().manual_seed(3))
    samples = timing.measure(lambda: x @ x.T, device="cpu", plan=timing.TimingPlan(iters=3))
    assert len(samples) == 3 and all(s > 0 for s in samples)


def test_float64_references_stay_on_a_device_that_has_float64():
    assert accel.float64_device("cpu") == "cpu"


@pytest.mark.parametrize(
    "text,message",
    [
        ("npu", "device 'npu': torch has no such device type; install torch_npu (Huawei Ascend)"),
        ("musa:1", "device 'musa': torch has no such device type; install torch_musa (Moore Threads)"),
        ("mlu", "install torch_mlu (Cambricon)"),
        ("tpu9", "device 'tpu9': torch has no such device type (plug-ins zhisuan knows: npu (torch_npu)"),
        ("cuda 1", "is not a device name"),
        ("cpu:x", "is not a device name"),
    ],
)
def test_a_device_torch_does_not_know_is_one_line_naming_the_plugin(text, message):
    with pytest.raises(UsageError) as error:
        accel.check(text)
    assert message in str(error.value) and "\n" not in str(error.value)


@no_accelerator
@pytest.mark.parametrize(
    "text,message",
    [
        ("cuda:1", "device 'cuda:1': no cuda device here (torch.cuda.is_available() is False)"),
        ("xpu", "device 'xpu': no xpu device here"),
        ("hip", "'hip' names a ROCm GPU, and this torch is not a ROCm build"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line(text, message):
    with pytest.raises(UsageError) as error:
        accel.check(text)
    assert message in str(error.value)


def test_a_type_without_a_collective_backend_is_one_line():
    with pytest.raises(UsageError, match="no default backend for meta devices: name one with --backend"):
        accel.dist_backend("meta")


def test_the_cli_refuses_a_missing_plugin_in_one_line(capsys):
    from zhisuan.bench.cli import main

    with pytest.raises(SystemExit) as done:
        main(["run", "matmul", "--device", "npu:0"])
    assert done.value.code == 2
    assert "install torch_npu (Huawei Ascend)" in capsys.readouterr().err.splitlines()[-1]


# ---- no "cuda" in the generic core -------------------------------------------------------------
# Every module the device-generic path runs through. A "cuda" string or a torch.cuda call may stay
# only where the work is CUDA's own, counted here with the reason; CUDA-only backends and modules
# (kernels/matmul/cuda.py, cupy, triton, IPC, NVML, numba.cuda STREAM) are not in the list.
GENERIC_CORE = [
    "bench/__init__.py",
    "bench/cli.py",
    "bench/core/*.py",
    "bench/harness/*.py",
    "bench/workloads/*.py",
    "bench/collectives/*.py",
    "bench/validate/*.py",
    "kernels/__init__.py",
    "kernels/registry.py",
    "kernels/checks.py",
    "kernels/*/__init__.py",
    "kernels/*/torch_backend.py",
]
CUDA_ONLY_MODULES = {"bench/validate/stream_gpu.py", "bench/validate/telemetry_nvml.py"}
ALLOWED = {
    "bench/core/accel.py": (2, "torch's ROCm builds name HIP devices 'cuda'"),
    "bench/core/environment.py": (2, "the CUDA version and driver in the environment record"),
    "bench/collectives/command.py": (1, "-G: CUDA graphs"),
    "bench/collectives/driver.py": (2, "-G: torch.cuda.CUDAGraph"),
    "bench/validate/matmul.py": (4, "tf32 math mode and NVIDIA fp8 (sm_89+) of CUDA GPUs"),
    "bench/validate/stream.py": (2, "the numba.cuda STREAM kernels on NVIDIA GPUs"),
    "bench/validate/telemetry.py": (1, "NVML on NVIDIA GPUs"),
    "bench/validate/telemetry_smi.py": (1, "ROCm GPUs are torch type 'cuda'"),
    "kernels/attention/torch_backend.py": (1, "SDPA pinned to its CUDA kernels (flash, efficient, cuDNN)"),
}


def cuda_mentions(path: Path) -> list[int]:
    """Lines with a 'cuda' / 'cuda:N' string or a torch.cuda attribute (comments and docstrings aside)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    lines = []
    for i, token in enumerate(tokens):
        if token.type == tokenize.STRING:
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):  # an f-string
                continue
            if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
                lines.append(token.start[0])
        elif token.string == "cuda" and i >= 2 and [t.string for t in tokens[i - 2 : i]] == ["torch", "."]:
            lines.append(token.start[0])
    return lines


def test_no_cuda_literal_in_the_generic_core():
    files = sorted({p for pattern in GENERIC_CORE for p in ROOT.glob(pattern)})
    assert len(files) > 40
    over = {}
    for path in files:
        name = path.relative_to(ROOT).as_posix()
        if name in CUDA_ONLY_MODULES:
            continue
        allowed = ALLOWED.get(name, (0, ""))[0]
        found = cuda_mentions(path)
        if len(found) > allowed:
            over[name] = f"lines {found}, {allowed} allowed"
    assert over == {}, f"'cuda' in the device-generic core (use zhisuan.bench.core.accel): {over}"
    assert all((ROOT / name).exists() for name in ALLOWED)


def test_the_literal_finder_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""cuda in a docstring"""\nx = "cuda"  # cuda\ny = f"{x}:cuda"\ntorch.cuda.synchronize()\n'
    )
    assert cuda_mentions(sample) == [2, 4]


# ---- ROCm builds: CUDA-only backends say so, Triton is probed ----------------------------------


@pytest.fixture
def rocm_build(monkeypatch):
    """This torch as a ROCm build with a GPU: torch.version.hip set, torch.cuda available."""
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    from zhisuan.kernels import devices

    monkeypatch.setattr(devices, "cuda_missing", lambda: None)  # its answer is cached per process


def test_cuda_only_backends_name_the_rocm_build(rocm_build):
    from zhisuan.kernels import devices
    from zhisuan.kernels.matmul.cuda import cuda_cpp_missing
    from zhisuan.kernels.matmul.cupy import cupy_missing_on

    assert accel.rocm_build()
    for reason in (cupy_missing_on("cuda"), cuda_cpp_missing("cuda"), devices.nvidia_missing("NVML")):
        assert "needs NVIDIA CUDA; this torch is a ROCm (HIP 6.2.41133) build" in reason


@pytest.mark.parametrize("backend,expected", [("hip", None), ("cuda", "targets 'cuda', not 'hip'")])
def test_triton_on_rocm_is_probed_not_assumed(rocm_build, monkeypatch, backend, expected):
    import types

    import triton.runtime

    from zhisuan.kernels import devices

    if devices.triton_stdlib_interpreted():
        pytest.skip("triton was imported for the interpreter in this process")
    target = types.SimpleNamespace(backend=backend)
    fake = types.SimpleNamespace(active=types.SimpleNamespace(get_current_target=lambda: target))
    monkeypatch.setattr(triton.runtime, "driver", fake)
    reason = devices.triton_hip_missing.__wrapped__()  # the probe itself, not its cached answer
    assert reason is None if expected is None else expected in reason


def test_triton_on_rocm_answers_with_the_hip_probe(rocm_build, monkeypatch):
    from zhisuan.kernels import devices

    monkeypatch.setattr(devices, "triton_missing", lambda: None)  # triton importable, no CUDA check
    monkeypatch.setattr(devices, "triton_hip_missing", lambda: "the HIP probe's answer")
    assert devices.triton_missing_on("cuda") == "the HIP probe's answer"
