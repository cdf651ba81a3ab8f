"""Shared fixtures. Tests run from any folder; paths are resolved from the repo root."""

from __future__ import annotations

import sys
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _no_worker_processes_left() -> Iterator[None]:
    """A test leaves no DataLoader worker (or other multiprocessing child) running. Workers ignore
    SIGTERM, so one left over keeps pytest from exiting: multiprocessing joins its children at
    exit (a CI run once hung so, after the last test, until its time ran out)."""
    yield
    mp = sys.modules.get("multiprocessing")
    if mp is None or not mp.active_children():
        return
    import gc

    gc.collect()  # a loader only kept alive by a reference cycle (an exception's traceback) goes now
    left = mp.active_children()
    for process in left:
        process.kill()
        process.join(5)
    assert not left, f"the test left {len(left)} process(es) running: {', '.join(p.name for p in left)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA: skipped, with the reason, where there is none."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device; torch {torch.__version__} sees none")
    for item in gpu:
        item.add_marker(skip)
