"""Shared fixtures. Tests run from any folder; paths are resolved from the repo root."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (reference_models, datafiles)


@pytest.fixture
def specs_dir() -> Path:
    return ROOT / "specs"


@pytest.fixture
def repo_root() -> Path:
    return ROOT

