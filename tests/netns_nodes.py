"""Two "nodes" on one machine, for the tests of the cluster paths (tests/test_validate_nodes.py).

Each node is a process holding its own network, UTS and mount namespaces: its own hostname, its own
network stack with one address on a veth pair that joins the two nodes (two hosts on one Ethernet
segment), and its own /etc/hosts that names both, as a cluster's name service would. Commands run
on a node through nsenter, so they share this machine's processes, files and /dev/shm but see the
node's hostname and network only. Everything goes when the holders end (the veth pair with them).

`why_unavailable()` says precisely what this machine lacks (root, the tools, or a namespace or veth
the kernel or the container refuses) so a test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUBNET = "10.77.0"
TOOLS = ("unshare", "nsenter", "ip", "mount")


@dataclass
class Node:
    name: str  # its hostname
    address: str  # its address on the veth pair
    holder: subprocess.Popen  # the process whose namespaces are the node's
    cgroup: Path | None = None  # a cgroup v1 cpu group its commands start in (cpu_quota)

    def command(self, argv: list[str]) -> list[str]:
        """argv as run on this node: in its network, UTS and mount namespaces (and cgroup, if any)."""
        enter = ["nsenter", "-t", str(self.holder.pid), "-n", "-u", "-m", "--"]
        if self.cgroup is not None:  # join the cgroup before exec, so every process of argv is in it
            return [*enter, "sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh", *argv]
        return [*enter, *argv]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def why_unavailable() -> str | None:
    """None when two nodes can be made here; otherwise the reason, naming what failed."""
    if os.geteuid() != 0:
        return "network namespaces and veth pairs need root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (util-linux, iproute2)"
    probe = _run(["unshare", "--net", "--uts", "--mount", "--", "ip", "link", "add", "zsprobe0", "type", "veth",
                  "peer", "name", "zsprobe1"])  # fmt: skip
    if probe.returncode != 0:
        return f"this machine refuses a network namespace with a veth pair: {probe.stderr.strip()}"
    return None


def _start_holder(name: str, hosts: Path) -> subprocess.Popen:
    script = f"mount --bind {hosts} /etc/hosts && hostname {name} && ip link set lo up && echo ready && exec sleep infinity"
    holder = subprocess.Popen(
        ["unshare", "--net", "--uts", "--mount", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        raise RuntimeError(f"node {name} could not be set up: {holder.communicate()[1].strip()}")
    return holder


def _check(argv: list[str]) -> None:
    done = _run(argv)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def two_nodes(tmp_path: Path, names=("node-a", "node-b")):
    """Two nodes joined by a veth pair, at SUBNET.1 and SUBNET.2; ended on leaving."""
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n" + "".join(f"{SUBNET}.{i + 1} {name}\n" for i, name in enumerate(names))
    )
    nodes: list[Node] = []
    try:
        for i, name in enumerate(names):
            nodes.append(Node(name, f"{SUBNET}.{i + 1}", _start_holder(name, hosts)))
        ends = [f"zs{os.getpid() % 10**6}{side}" for side in "ab"]  # unique while they are in our namespace
        _check(["ip", "link", "add", ends[0], "type", "veth", "peer", "name", ends[1]])
        for node, end in zip(nodes, ends, strict=True):
            _check(["ip", "link", "set", end, "netns", str(node.holder.pid)])
            enter = ["nsenter", "-t", str(node.holder.pid), "-n", "--"]
            _check([*enter, "ip", "addr", "add", f"{node.address}/24", "dev", end])
            _check([*enter, "ip", "link", "set", end, "up"])
        yield nodes
    finally:
        for node in nodes:
            node.holder.kill()
            node.holder.wait()
            if node.cgroup is not None:
                remove_cgroup(node.cgroup)


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1; cgroup v2 has cpu.max instead


def cpu_quota(node: Node, fraction: float, period_us: int = 100_000) -> str | None:
    """Put node's later commands in a cgroup limited to `fraction` of one CPU; None, or why not."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    base = CGROUP_CPU if (CGROUP_CPU / "cpu.cfs_quota_us").exists() else None
    if base is None and not (v2.exists() and "cpu" in v2.read_text().split()):
        return "no cgroup cpu controller (neither v1 /sys/fs/cgroup/cpu nor v2 with cpu) to throttle a node"
    root = base or Path("/sys/fs/cgroup")
    group = root / f"zhisuan-test-{node.name}-{os.getpid()}"
    try:
        group.mkdir()
        if base is not None:
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(int(fraction * period_us)))
        else:
            (group / "cpu.max").write_text(f"{int(fraction * period_us)} {period_us}")
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        return f"cannot make a cgroup with a CPU quota at {group}: {exc.strerror or exc}"
    node.cgroup = group
    return None


def remove_cgroup(group: Path) -> None:
    """Remove the group once its processes are gone (they are moved to the root group first)."""
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (group.parent / "cgroup.procs").write_text(pid)
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
