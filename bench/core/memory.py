"""How much memory a device has free now: the bound a run is held to before it allocates anything."""

from __future__ import annotations

import os

import torch


def available_bytes(device: str) -> tuple[int | None, str]:
    """(bytes free on device, where that figure comes from); None where it cannot be read."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev.index or 0)
        return free, f"free on {device} (torch.cuda.mem_get_info)"
    host = _meminfo_available()
    limit = _cgroup_headroom()
    if limit is not None and (host is None or limit < host):
        return limit, "left under this process's memory limit (cgroup memory.max)"
    if host is not None:
        return host, "available on this host (MemAvailable in /proc/meminfo)"
    return None, "unknown"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), where a limit is set."""
    try:
        with open("/proc/self/cgroup") as fh:
            path = next((line.split(":", 2)[2].strip() for line in fh if line.startswith("0::")), None)
        if path is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(folder, "memory.max")) as fh:
            limit = fh.read().strip()
        with open(os.path.join(folder, "memory.current")) as fh:
            current = int(fh.read().strip())
    except (OSError, ValueError, IndexError):
        return None
    return None if limit == "max" else max(int(limit) - current, 0)


def gib(nbytes: float) -> str:
    return f"{nbytes / (1 << 30):.3g} GiB"
