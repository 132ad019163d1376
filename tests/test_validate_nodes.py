"""Cluster mode across 2 "nodes" x 2 ranks on this one machine (issue 12 §6).

Each node is a network + UTS + mount namespace with its own hostname, joined to the other by a veth
pair (tests/netns_nodes.py); a torchrun agent on each node meets the other in a c10d rendezvous over
TCP at node-a's address, and gloo carries the ranks' traffic between the two addresses. What this
proves: the cluster paths (rendezvous across hosts, ranks naming their host, rank 0 gathering from
another host, the store read back across hosts) work when the ranks are on distinct hosts and
addresses. What it does not: the nodes share this machine's CPUs, memory, /dev/shm and clock, and a
veth pair is not a real network (no latency, no loss, no NIC).

- A node whose CPU is throttled (a cgroup CPU quota, from the burn-in on, so the start-up is not
  throttled) is named, by its hostname, as the straggler of the burn-in.
- A node that goes down (every process of it SIGKILLed) is named, by its hostname, by the ranks left,
  long before the timeout, and what was measured before stays on disk.

Skipped, with the reason, where this machine does not allow namespaces, veth pairs or cgroups.
"""

import contextlib
import subprocess
import sys
import time

import pytest
from launch_ranks import wait_for_burn_in
from netns_nodes import cpu_group, power_off, set_cpu_quota, two_nodes, why_unavailable

from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.validate.levels import TEST_SIZES_ENV

UNAVAILABLE = why_unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")]
RDZV_PORT = 29400  # in node-a's own network namespace: no other process there to take it


def _torchrun(node, nodes, tmp_path, *validate_args) -> subprocess.Popen:
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "2",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{nodes[0].address}:{RDZV_PORT}", "--rdzv-id", "nodes",
            "--max-restarts", "0", "-m", "zhisuan.bench", "validate", "--level", "burn-in",
            "--json", str(tmp_path / "v.jsonl"), "--report-dir", str(tmp_path / "report"), *validate_args]  # fmt: skip
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", TEST_SIZES_ENV: "tiny", "PYTHONUNBUFFERED": "1"}
    return node.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def _validate_on_both(nodes, tmp_path, *validate_args):
    procs = [_torchrun(node, nodes, tmp_path, *validate_args) for node in nodes]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def test_a_throttled_node_is_named_as_the_straggler(tmp_path):
    with two_nodes(tmp_path) as nodes:
        slow = nodes[1]
        why = cpu_group(slow)
        if why:
            pytest.skip(why)
        path = tmp_path / "v.jsonl"
        with _validate_on_both(nodes, tmp_path, "--duration", "4s", "--timeout", "120") as procs:
            wait_for_burn_in(path, procs)
            set_cpu_quota(slow, 0.2)  # node-b's 2 ranks together: a fifth of one CPU
            outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] in ([0, 0], [1, 1]), [err[-3000:] for _, err in outputs]
    records = read_results(path)
    summary = records[-1]
    assert summary.op == "summary"
    hosts = {d["rank"]: d["host"] for d in summary.extra["devices"]}
    assert sorted(hosts.values()) == ["node-a", "node-a", "node-b", "node-b"]
    all_reduce = [r for r in records if r.op == "all_reduce"]
    assert len(all_reduce) == 4 and all(r.extra["world"] == 4 and r.extra["wrong"] == 0 for r in all_reduce)
    across = [r for r in records if r.op == "integrity" and r.extra["rank"] == -1]
    assert across and all(r.extra["ranks"] == [0, 1, 2, 3] for r in across)
    # The burn-in runs long enough per window for the quota to show; the tiny checks before it do
    # not, and on a shared host they may flag any rank now and then: only the burn-in is asserted.
    burn_in = [s for s in summary.extra["stragglers"] if s["check"] == "burn-in fp32"]
    assert sorted((s["host"], s["rank"]) for s in burn_in) == sorted(
        (h, r) for r, h in hosts.items() if h == "node-b"
    )


def test_a_node_that_goes_down_is_named_by_the_ranks_left(tmp_path):
    path = tmp_path / "v.jsonl"
    with (
        two_nodes(tmp_path) as nodes,
        _validate_on_both(nodes, tmp_path, "--duration", "10m", "--timeout", "120") as procs,
    ):
        wait_for_burn_in(path, procs)
        time.sleep(1.0)  # into the burn-in: every rank is in its window loop
        assert power_off(nodes[1])
        down = time.monotonic()
        _, err = procs[0].communicate(timeout=90)
        seconds = time.monotonic() - down
    assert procs[0].returncode != 0
    # The first rank left to fail names the node that is gone, by its hostname, within seconds (the
    # burn-in's windows are 5 s), not after the 120 s timeout; its agent then ends the other (SIGTERM).
    lines = [line for line in err.splitlines() if line.startswith("zhisuan validate: rank")]
    assert lines, err[-3000:]
    for line in lines:
        assert " on node-a: " in line and "ranks of node-b (" in line and " are gone (no heartbeat" in line, (
            line
        )
    assert seconds < 60
    records = read_results(path)  # what was measured before stays on disk
    assert {r.extra["rank"] for r in records if r.op == "matmul"} == {0, 1, 2, 3}
