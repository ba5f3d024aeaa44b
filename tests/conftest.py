"""Shared fixtures and paths for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
