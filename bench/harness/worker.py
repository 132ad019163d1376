"""A benchmark worker: a clean parent process that forks a fresh child for each request.

Started by zhisuan.bench.harness.zygote as a script, by path, under any interpreter where zhisuan
imports (`python .../worker.py`): the zhisuan it imports is that environment's own. `zhisuan run`
starts it with this very interpreter; `zhisuan ab` starts one per version of the code, so each side
runs its own kernels, workloads and checks. Only the standard library is imported before a request.

Why a parent that forks: a fresh process is the unit of evidence that catches process-level effects
(where the kernel's buffers landed in physical memory, its threads' placement), and importing torch
costs seconds; a fork from a parent that has imported torch costs milliseconds. The parent only
imports: GNU OpenMP is not fork-safe once a parallel region ran, so every child checks and times
from scratch.

Parent protocol, one JSON object per line: it prints {"ready": ..., "missing": [names of USES this
zhisuan lacks]} once, then reads {"fork": PATH}
from stdin and answers {"pid": N}; the child connects to the Unix socket PATH. EOF ends the parent.
Child protocol, one JSON object per line each way, one reply per request ({"error": text} on failure):
  {"cmd": "execute", ...}  one round of `zhisuan run`: runner.execute over the cases -> {"results", "host"}
                           ("round": N pins a one-thread child as "epoch" does below)
  {"cmd": "prepare", ...}  `zhisuan ab`: inputs, reference, every backend checked -> {"benchmarks"}
                           ("epoch": N pins a one-thread child to that turn's CPU: Child._pin)
  {"cmd": "time", "id": I, "samples": N, "warmup_s": W} -> {"samples_s": [...]}, or
                           {"failed": status, "error": why} when the block's last output is wrong
  {"cmd": "exit"}
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import time
import traceback

# Run as a script, this file's folder would come first on sys.path and shadow nothing useful.
if __name__ == "__main__":
    sys.path = [
        p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
    ]


HEAP_SHIFT_MAX = 1 << 16  # bytes: the most of each random block a child takes first (_shift_heap)
HEAP_SHIFT_BLOCKS = 64  # enough to fill and split the holes an imported parent leaves (16 often did not)

# What this script calls in the zhisuan it runs against. `zhisuan ab` runs the orchestrator's copy
# of this script against each side's tree (both sides timed by one method), so a side from before
# one of these existed could only crash mid-run; the parent names what is missing instead.
USES = {
    "zhisuan.bench.core.chips": ("detect", "cpu_info"),
    "zhisuan.bench.core.environment": ("environment",),
    "zhisuan.bench.core.threads": ("limited", "per_rank"),
    "zhisuan.bench.core.timing": ("CacheFlusher", "TimingPlan", "synchronize"),
    "zhisuan.bench.harness.checktime": ("time_block",),
    "zhisuan.bench.harness.runner": (
        "Case",
        "RunPlan",
        "execute",
        "baseline_error",
        "check_backend",
        "fingerprint",
        "new_result",
    ),
    "zhisuan.bench.validate.hostload": ("CpuTimes", "load_average", "window"),
    "zhisuan.bench.workloads": ("spec_for",),
    "zhisuan.kernels.registry": ("get", "parse_dtype", "registered"),
}


def missing_uses() -> list[str]:
    """The names of USES that the zhisuan imported here lacks."""
    import importlib

    missing = []
    for module, names in USES.items():
        try:
            found = importlib.import_module(module)
        except ImportError:
            missing.append(module)
            continue
        missing += [f"{module}.{name}" for name in names if not hasattr(found, name)]
    return missing


def serve() -> None:
    """The parent: import once, then fork one child per request."""
    import torch  # noqa: F401  (imported here, once, for every child)

    import zhisuan.bench
    from zhisuan.bench.core import chips

    missing = missing_uses()  # imports every module a child uses, once, here
    chips.cpu_info()  # slow (py-cpuinfo) and the same for every child: gathered once, here

    # Where this zhisuan's source lives (links resolved): the orchestrator checks it is the one meant.
    where = os.path.dirname(os.path.dirname(os.path.realpath(zhisuan.bench.__file__)))
    ready = {"ready": True, "python": sys.version.split()[0], "executable": sys.executable, "zhisuan": where,
             "missing": missing}  # fmt: skip
    print(json.dumps(ready), flush=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child_main(request["fork"])
        print(json.dumps({"pid": pid}), flush=True)


def _child_main(address: str) -> None:
    code = 0
    try:
        sys.stdin.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        shifted = _shift_heap()  # noqa: F841  (held, unused, until the child exits)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(address)
            stream = sock.makefile("rwb")
            Child(forked=True).serve(stream)
    except BaseException:  # noqa: BLE001  (a child must never return into the parent's loop)
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _shift_heap() -> list[bytearray]:
    """Blocks of random sizes, taken before anything else: what the child allocates next (inputs,
    outputs, a kernel's scratch) lands at other addresses than its siblings' did. Several blocks,
    because the parent's heap has holes: one block fills one hole and can leave the rest as they were.

    A forked child inherits its parent's heap, so without this every child of one parent put its
    tensors at the same addresses (measured: the attention inputs of successive children at
    identical addresses), and whatever those addresses cost (cache-set and 4K aliasing between
    buffers) stayed with that parent: with `zhisuan ab`, with one side for a whole run, which the
    epochs cannot see; with `zhisuan run`, with the whole run. Shifted, it is drawn afresh per child.
    """
    import secrets

    return [bytearray(64 * (1 + secrets.randbelow(HEAP_SHIFT_MAX // 64))) for _ in range(HEAP_SHIFT_BLOCKS)]


class Child:
    """One fresh process: answers requests until told to exit or the socket closes."""

    def __init__(self, forked: bool = False):
        self.items = []  # ab: checked callables, by benchmark id
        self.threads = None
        self.forked = forked  # a forked child may pin itself (_pin); in process, the caller's CPUs stay

    def serve(self, stream) -> None:
        for line in stream:
            request = json.loads(line)
            if request["cmd"] == "exit":
                return
            try:
                reply = getattr(self, request["cmd"])(request)
            except Exception as exc:  # reported to the orchestrator, which says which side and why
                reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            stream.write(json.dumps(reply, default=str).encode() + b"\n")
            stream.flush()

    def _enter_thread_policy(self) -> None:
        from zhisuan.bench.core import threads

        if self.threads is None:
            self.threads = threads.limited(threads.per_rank())
            self.threads.__enter__()

    def _pin(self, turn: int | None) -> None:
        """One thread: this child on one CPU, chosen by `turn` (ab's epoch, run's round) in rotation.

        ab: both sides' children of an epoch share the CPU. Left to the scheduler, each side's
        children often stayed on their own core (on 2 cores, in one run: A's on CPU 0 and B's on
        CPU 1 in 6 of 9 epochs), so a busier core could slow one side through most of a run, which
        the epochs cannot see: an A/A run of the same code exited 1 at +7.8%.
        run: the rounds visit every CPU alike, so a run's time is not that of the core its rounds
        happened to stay on.
        With more threads than one, the children keep every CPU (a count below the CPUs could land
        on one core's hyperthreads); in process (not forked), the caller's CPUs are not touched."""
        from zhisuan.bench.core import threads

        if turn is None or not self.forked or not hasattr(os, "sched_setaffinity") or threads.per_rank() != 1:
            return
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[turn % len(cpus)]})

    def execute(self, request: dict) -> dict:
        """One round of `zhisuan run`: the harness's own check-then-time over the cases given."""
        from zhisuan.bench.core import timing
        from zhisuan.bench.harness import runner

        self._pin(request.get("round"))
        plan = runner.RunPlan(device=request["device"], cases=[_case(c) for c in request["cases"]])
        from zhisuan.bench.validate import hostload

        start, before = hostload.CpuTimes.now(), hostload.load_average()
        results = runner.execute(
            plan,
            timing_plan=timing.TimingPlan(**request["timing"]),
            flush=request["flush"],
            seed=request["seed"],
            run_id=request["run_id"],
            interleave=request["interleave"],
        )
        host = hostload.window(start, hostload.CpuTimes.now()) | hostload.load_average()
        host["load_1m_before"] = before.get("load_1m")
        host["cpus"] = os.cpu_count()
        return {"results": [r.to_dict() for r in results], "host": host}

    def prepare(self, request: dict) -> dict:
        """ab: per case, seeded inputs and the float64 reference; every backend checked, as the runner
        does. A backend this version lacks, or cannot run here, is reported as such and not timed."""
        from zhisuan.bench.core import chips
        from zhisuan.bench.core.environment import environment
        from zhisuan.bench.harness import runner
        from zhisuan.bench.workloads import spec_for
        from zhisuan.kernels import registry

        self._pin(request.get("epoch"))
        self._enter_thread_policy()
        device = chips.detect(request["device"])
        env = environment()
        self.device = request["device"]
        self.flush_bytes = 2 * device.cache_bytes if request.get("flush", True) else 0
        self.keep = []  # inputs and references live as long as the callables that use them
        benchmarks = []
        for data in request["cases"]:
            spec = spec_for(data["op"])
            known = registry.registered(spec.registry_op)
            dtype = registry.parse_dtype(data["dtype"])
            case = runner.Case(
                data["op"], data["shape"], dtype, [known[n] for n in data["backends"] if n in known]
            )
            inputs = spec.make_inputs(case.shape, dtype, request["device"], request["seed"])
            reference, expected = spec.reference(inputs), runner.fingerprint(inputs.tensors())
            base_err = runner.baseline_error(spec, case, request["device"], request["seed"], reference)
            self.keep.append(reference)
            fingerprint = _fingerprint(inputs)
            del inputs  # each backend gets its own copy, as in the runner
            for name in data["backends"]:
                entry = {"backend": name, "inputs": fingerprint, "id": len(self.items)}
                backend = known.get(name)
                why_not = "not in this version" if backend is None else (
                    spec.accepts(backend) or backend.why_not(device.kind, dtype))  # fmt: skip
                item = None
                if why_not:
                    entry["unavailable"] = why_not
                else:
                    result = runner.new_result(case, backend, spec, device, env, request.get("run_id", ""))
                    own = spec.make_inputs(case.shape, dtype, request["device"], request["seed"])
                    self.keep.append(own)
                    item = runner.check_backend(result, backend, spec, own, reference, base_err, expected)
                    entry["result"] = result.to_dict()
                self.items.append(item)
                benchmarks.append(entry)
        return {"benchmarks": benchmarks}

    def time(self, request: dict) -> dict:
        """ab: one block of samples of one checked callable, after a short warm-up, as the harness
        times (checktime.time_block: inputs negated between samples, the last output checked).
        A block whose last output or inputs fail that check answers {"failed": status, "error"}."""
        from zhisuan.bench.core import timing
        from zhisuan.bench.harness import checktime

        item = self.items[request["id"]]
        if item is None:
            raise ValueError(f"benchmark {request['id']} failed its check: it is not timed")
        if not hasattr(self, "flusher"):
            self.flusher = timing.CacheFlusher(self.flush_bytes, self.device) if self.flush_bytes else None
        deadline = time.perf_counter() + request.get("warmup_s", 0.0)
        item.fn()
        while time.perf_counter() < deadline:
            item.fn()
        timing.synchronize(self.device)
        samples = checktime.time_block(item, self.device, int(request["samples"]), self.flusher)
        if samples is None:
            return {"failed": item.result.status, "error": item.result.error}
        return {"samples_s": samples}


def _case(data: dict):
    """A runner.Case from its JSON form: op, shape, dtype name, backend names."""
    from zhisuan.bench.harness import runner
    from zhisuan.bench.workloads import spec_for
    from zhisuan.kernels import registry

    spec = spec_for(data["op"])
    chosen = [registry.get(spec.registry_op, name) for name in data["backends"]]
    return runner.Case(data["op"], data["shape"], registry.parse_dtype(data["dtype"]), chosen)


def _fingerprint(inputs) -> str:
    """A short hash of the input tensors' bytes: both versions of an ab run must time the same data."""
    import torch

    digest = hashlib.sha256()
    for tensor in inputs.args:
        if isinstance(tensor, torch.Tensor):
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    serve()
