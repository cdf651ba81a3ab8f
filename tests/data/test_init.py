"""netspec.data (the package's __init__): its public names, imported lazily from their modules."""

from __future__ import annotations

import importlib

import pytest

import netspec.data


@pytest.mark.parametrize("name", netspec.data.__all__)
def test_every_public_name_comes_from_its_module(name):
    module = importlib.import_module(f"netspec.data.{netspec.data._HOME[name]}")
    assert getattr(netspec.data, name) is getattr(module, name)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'build_loader'"):
        netspec.data.build_loader  # noqa: B018
    assert "build_loaders" in dir(netspec.data)


def test_what_the_runner_and_benchmarks_import():
    from netspec.data import DataSpec, build_loaders  # noqa: F401  (runner.py, benchmarks/bench_data.py)
