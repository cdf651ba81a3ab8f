"""Fixtures of the importer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small convolutions at batch 1 and 2 gain nothing from threads, and on a busy machine
    OpenMP's waiting makes them up to 100 times slower: these tests run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
