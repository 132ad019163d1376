"""Shared test settings: GPU tests skip with their reason on CPU; seeded randomness."""

import pytest
import torch

from zhisuan.kernels.devices import cuda_missing


def pytest_collection_modifyitems(config, items):
    reason = cuda_missing()
    if reason is None:
        return
    skip_gpu = pytest.mark.skip(reason=f"GPU test: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
