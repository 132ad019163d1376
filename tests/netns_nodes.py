"""Two "nodes" on one machine, for the tests of the cluster paths (tests/test_validate_nodes.py).

Each node is a process holding its own network, UTS and mount namespaces: its own hostname, its own
network stack with one address on a veth pair that joins the two nodes (two hosts on one Ethernet
segment), and its own /etc/hosts that names both, as a cluster's name service would. Commands run
on a node through nsenter, so they share this machine's processes, files and /dev/shm but see the
node's hostname and network only. On leaving, every process of a node is killed and the holders
end (the veth pair goes with them).

`why_unavailable()` says precisely what this machine lacks (root, the tools, or a namespace or veth
the kernel or the container refuses) so a test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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
    cgroup: Path | None = None  # a CPU cgroup its commands start in (cpu_group, set_cpu_quota)

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
            power_off(node)  # what the node still runs (a launcher's ranks outlive a killed launcher)
            node.holder.kill()
            node.holder.wait()
            if node.cgroup is not None:
                remove_cgroup(node.cgroup)


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1; on cgroup v2 the group's cpu.max
CGROUP_V2 = Path("/sys/fs/cgroup")


def cpu_group(node: Node) -> str | None:
    """Give node a CPU cgroup, unlimited for now, that its later commands start in; None, or why not.

    The quota comes later (set_cpu_quota), once the node's processes are past their start-up, so a
    test throttles what it measures and not Python's imports."""
    v1 = (CGROUP_CPU / "cpu.cfs_quota_us").exists()
    controllers = CGROUP_V2 / "cgroup.controllers"
    if not v1 and not (controllers.exists() and "cpu" in controllers.read_text().split()):
        return "no cgroup cpu controller (neither v1 /sys/fs/cgroup/cpu nor v2 with cpu) to throttle a node"
    group = (CGROUP_CPU if v1 else CGROUP_V2) / f"zhisuan-test-{node.name}-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        return f"cannot make a cgroup at {group}: {exc.strerror or exc}"
    node.cgroup = group
    return None


def set_cpu_quota(node: Node, fraction: float, period_us: int = 10_000) -> None:
    """Limit every process of node's cgroup, together, to `fraction` of one CPU from now on."""
    quota = int(fraction * period_us)
    if (node.cgroup / "cpu.cfs_quota_us").exists():
        (node.cgroup / "cpu.cfs_period_us").write_text(str(period_us))
        (node.cgroup / "cpu.cfs_quota_us").write_text(str(quota))
    else:
        (node.cgroup / "cpu.max").write_text(f"{quota} {period_us}")


def power_off(node: Node) -> list[int]:
    """SIGKILL every process in node's network namespace but its holder, as a node going down would
    end them (its peers' sockets see the connections reset); the pids killed."""
    own = os.readlink(f"/proc/{node.holder.pid}/ns/net")
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == node.holder.pid:
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/ns/net") == own:
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
    return killed


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
