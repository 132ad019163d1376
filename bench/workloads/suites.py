"""Named shape suites, as data: bench/data/suites/<name>.toml.

A suite lists [[matmul]] and [[attention]] entries. A matmul entry gives M, N, K, or `size` /
`sizes` for square products, or only N and K: then M is the suite's `tokens` (tokens in flight,
per device kind, overridable). An attention entry gives batch, heads, heads_kv (default heads),
seq (or seq_q and seq_k), head_dim and causal (a list). `devices` limits an entry to device kinds.
"""

from __future__ import annotations

import sys
from importlib.resources import files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.workloads.attention import AttentionSpec


def suite_names() -> list[str]:
    folder = files("zhisuan.bench").joinpath("data/suites")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name: str) -> dict:
    if name not in suite_names():
        raise UsageError(f"unknown suite {name!r}; suites: {', '.join(suite_names())}")
    return tomllib.loads(files("zhisuan.bench").joinpath(f"data/suites/{name}.toml").read_text())


def suite_shapes(name: str, op: str, device_kind: str, tokens: int | None = None) -> list[dict]:
    """The shapes of one op in a suite for a device kind ('cpu', 'cuda')."""
    suite = load_suite(name)
    default_tokens = suite.get("tokens", {}).get(device_kind)
    shapes = []
    for entry in suite.get("attention" if op == "attention-train" else op, []):
        if device_kind not in entry.get("devices", [device_kind]):
            continue
        if op == "matmul":
            shapes += _matmul_shapes(entry, tokens or default_tokens, name)
        elif op in ("attention", "attention-train"):
            shapes += _attention_shapes(entry)
    return shapes


def _matmul_shapes(entry: dict, tokens: int | None, suite: str) -> list[dict]:
    named = {"name": entry["name"]} if "name" in entry else {}
    if "sizes" in entry or "size" in entry:
        return [{"M": s, "N": s, "K": s} for s in entry.get("sizes", [entry.get("size")])]
    m = entry.get("M", tokens)
    if m is None:
        raise ValueError(f"suite {suite}: matmul entry {entry} has no M and the suite no tokens")
    return [{"M": m, "N": entry["N"], "K": entry["K"], **named}]


def _attention_shapes(entry: dict) -> list[dict]:
    seq_q = entry.get("seq_q", entry.get("seq"))
    seq_k = entry.get("seq_k", entry.get("seq"))
    heads = entry["heads"]
    return [
        AttentionSpec.shape(
            entry["batch"], heads, entry.get("heads_kv", heads), seq_q, seq_k, entry["head_dim"], causal
        )
        for causal in entry.get("causal", [False, True])
    ]
