"""bench/dev/shm_placement: the paired in-place / out-of-place timing of the shm all-reduce checks
both placements exactly before it times them, and prints one line per size."""

import pytest

from zhisuan.bench.dev import shm_placement
from zhisuan.kernels._ext import cpu_ext_missing


@pytest.mark.skipif(cpu_ext_missing() is not None, reason=f"{cpu_ext_missing()}")
def test_pairs_are_checked_then_timed_at_awkward_sizes(capfd):
    assert shm_placement.main(["--sizes", "4,97K", "--pairs", "3"]) == 0
    lines = [line for line in capfd.readouterr().out.splitlines() if "out/in" in line]
    assert [line.split()[0] for line in lines] == ["4", str(97 * 1024)]
    assert all("checked exact" in line for line in lines)
