"""Input checks shared by the ops' front doors: each error names the argument, shape or dtype."""

from __future__ import annotations

import torch


def require_tensor(op: str, name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def require_rank(op: str, name: str, t: torch.Tensor, rank: int, layout: str) -> None:
    if t.dim() != rank:
        raise ValueError(f"{op}: {name} must be {rank}-D {layout}, got shape {tuple(t.shape)}")


def require_same_dtype(op: str, **tensors: torch.Tensor) -> torch.dtype:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name}={str(d).removeprefix('torch.')}" for name, d in dtypes.items())
        raise TypeError(f"{op}: inputs must share one dtype, got {listed}")
    return next(iter(dtypes.values()))


def require_same_device(op: str, **tensors: torch.Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ValueError(f"{op}: inputs must be on one device, got {listed}")
    return next(iter(devices.values()))
