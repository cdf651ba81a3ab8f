"""Fixtures of the importer tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

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


# The list tests (every torchvision classifier and segmentation model, a model of each timm
# family) print their counts at the end of a run: how many round-tripped, how many were
# refused with exactly their listed line, how many failed. test function -> (list, its table)
LISTS = {
    "test_torchvision_model_round_trips": ("torchvision's classifiers", "LIMITATIONS"),
    "test_torchvision_segmentation_model_round_trips": ("torchvision's segmentation models", "SEG_LIMITATIONS"),
    "test_timm_family_round_trips": ("timm's model families", "REFUSALS"),
}
RESULTS: dict[str, Counter[str]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    entry = LISTS.get(getattr(item, "originalname", ""))
    if entry is None or report.when != "call":
        return
    title, table = entry
    module = item.module  # type: ignore[attr-defined]
    (param,) = item.callspec.params.values()  # type: ignore[attr-defined]
    name = module.FAMILIES[param] if hasattr(module, "FAMILIES") else param  # timm: the family's model
    kind = "failed" if report.failed else "refused" if name in getattr(module, table) else "round-trip"
    RESULTS.setdefault(title, Counter())[kind] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, counts in RESULTS.items():
        total = sum(counts.values())
        terminalreporter.write_line(
            f"import list, {title}: {counts['round-trip']} of {total} run round-trip, "
            f"{counts['refused']} refused with their listed line, {counts['failed']} failed"
        )
