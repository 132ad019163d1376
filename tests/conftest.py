"""Shared test settings: keep torch to the machine's cores, make results reproducible."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
