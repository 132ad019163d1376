"""Fingerprints of input tensors, so that a backend that writes into its inputs is caught.

A backend's inputs are fingerprinted before its first call and again after its check and after
its timing; a difference means the backend wrote into them (its result gets status "mutated"). On
the CPU the fingerprint is a BLAKE2 hash of the tensor's bytes (read in place, about 1 GB/s); on a
GPU it is computed on the device, chunk by chunk (bounded extra memory): a sum of the bytes, each
weighted by its position, modulo 2**64 (any change to a byte changes it, short of changes that
cancel exactly). Shape, strides and dtype are part of it. A guard against accidents (an in-place
kernel, an output aliased to an input), not against an adversary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch

CHUNK_BYTES = 1 << 22  # bytes per step: each becomes an int64 (8x) temporary


def tensor_fingerprint(tensor: torch.Tensor) -> tuple:
    data = tensor.detach()
    raw = data.contiguous().reshape(-1).view(torch.uint8)
    if raw.device.type == "cpu":
        digest = hashlib.blake2b(raw.numpy(), digest_size=16).hexdigest()
    else:
        digest = _weighted_sum(raw)
    return (str(data.dtype), tuple(data.shape), tuple(data.stride()), digest)


def _weighted_sum(raw: torch.Tensor) -> int:
    """sum(byte[i] * (i + 1)) modulo 2**64, on the tensor's device."""
    total = torch.zeros((), dtype=torch.int64, device=raw.device)
    for start in range(0, raw.numel(), CHUNK_BYTES):
        chunk = raw[start : start + CHUNK_BYTES].to(torch.int64)
        weights = torch.arange(start + 1, start + 1 + chunk.numel(), dtype=torch.int64, device=raw.device)
        total += (chunk * weights).sum()  # wraps modulo 2**64: a hash, not a count
    return int(total)


def fingerprint(values: Iterable[object]) -> tuple:
    """One fingerprint of every tensor among values (other values are left out)."""
    return tuple(tensor_fingerprint(v) for v in values if isinstance(v, torch.Tensor))
