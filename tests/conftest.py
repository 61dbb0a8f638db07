"""Shared fixtures. The ``shared_data`` tier needs ../shared/data; it skips with a reason when the
folder is absent, and .ci/run makes it mandatory (HANLM_REQUIRE_SHARED_DATA=1 turns the skip
into a failure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("HANLM_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("HANLM_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared data folder {SHARED_DATA} is missing but required")
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
