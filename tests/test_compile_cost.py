"""Compile work grows linearly with the node count, counted in steps that do not depend on the
machine: names probed while auto-naming, layer and op calls run on meta tensors.

The times themselves are measured by ``benchmarks/bench_startup.py`` (a 5,000-node chain).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import torch
from torch import nn

import netspec
from netspec.compiler import graph as graph_module
from netspec.compiler import shapes as shapes_module
from netspec.compiler.graph import RESERVED_NAMES, resolve
from netspec.nodes.layers import LAYERS


def _chain(n: int) -> dict[str, Any]:
    nodes = [{"Linear": {"out_features": 16}} if i % 2 == 0 else "ReLU" for i in range(n)]
    return {"name": "chain", "inputs": {"x": [16]}, "nodes": nodes}


def _resolve(spec_data: dict[str, Any], env: dict[str, Any] | None = None) -> list[str]:
    spec = netspec.load_spec(spec_data)
    dag = resolve(spec.nodes, list(spec.inputs), spec.outputs, env or {}, set(), ())
    return [n.name for n in dag.nodes]


def _probes(monkeypatch: pytest.MonkeyPatch, n: int) -> int:
    """Names looked up while naming an n-node chain."""
    count = 0
    real = graph_module._Scope.__contains__

    def counting(self: Any, name: object) -> bool:
        nonlocal count
        count += 1
        return real(self, name)

    monkeypatch.setattr(graph_module._Scope, "__contains__", counting)
    _resolve(_chain(n))
    return count


def test_auto_naming_probes_a_few_names_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each auto name resumes after the last one its op got: no scan of every name taken."""
    for n in (200, 800):  # probing every suffix from 0 would take about n * n / 4
        assert _probes(monkeypatch, n) <= 2 * n


def _reference_names(ops: list[str], explicit: list[str | None], env: set[str]) -> list[str]:
    """The first free ``op``, ``op_1``, ``op_2``, ... for each unnamed node, probing from 0."""
    taken = {"x"} | {e for e in explicit if e}
    names = []
    for op, name in zip(ops, explicit):
        if name is None:
            base, i = op.lower(), 0
            name = base
            while name in taken or name in env or name in RESERVED_NAMES:
                i += 1
                name = f"{base}_{i}"
        taken.add(name)
        names.append(name)
    return names


@pytest.mark.parametrize("seed", range(5))
def test_auto_names_are_those_of_probing_from_zero(seed: int) -> None:
    """Random chains with explicit names in the way (`relu_2` written by hand, a parameter
    called `linear_1`) get the names the simple first-free-name rule gives."""
    rng = random.Random(seed)
    ops = [rng.choice(["Linear", "ReLU", "Tanh"]) for _ in range(60)]
    explicit = [rng.choice([None, None, None, f"{op.lower()}_{rng.randint(0, 6)}"]) for op in ops]
    explicit = [e if e not in explicit[:i] else None for i, e in enumerate(explicit)]  # names are unique
    nodes = [{"Linear": {"out_features": 4}} if op == "Linear" else op for op in ops]
    nodes = [n if e is None else {e: n} for n, e in zip(nodes, explicit)]
    params = {"linear_1": 3} if "linear_1" not in explicit else {}
    names = _resolve({"name": "t", "inputs": {"x": [4]}, "nodes": nodes}, params)
    assert names == _reference_names(ops, explicit, set(params))


def test_nodes_written_out_of_order_run_in_spec_order_when_ready() -> None:
    nodes = [
        {"c": {"add": ["b", "a"]}},
        {"b": {"Tanh": {}, "from": "x"}},
        {"a": {"ReLU": {}, "from": "x"}},
        {"e": {"Sigmoid": {}, "from": "x"}},
        {"d": {"add": ["c", "e"]}},
    ]
    assert _resolve({"name": "t", "inputs": {"x": [4]}, "nodes": nodes}) == ["b", "a", "c", "e", "d"]


def test_a_cycle_is_still_reported() -> None:
    nodes = [{"a": {"ReLU": {}, "from": "b"}}, {"b": {"Tanh": {}, "from": "a"}}, {"add": ["a", "x"]}]
    with pytest.raises(netspec.SpecError, match=re.escape("the graph has a cycle: a -> b -> a")):
        _resolve({"name": "t", "inputs": {"x": [4]}, "nodes": nodes})


# ---- each distinct call is worked out once --------------------------------------------------


def _meta_runs(monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]) -> tuple[int, netspec.api.Compiled]:
    """How many output shapes were worked out: meta runs, and answers of a shape rule
    (shape_rules.py) that stood in for one."""
    count = 0
    real_run, real_rule = shapes_module.run_probe, shapes_module.probe_by_rule

    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        return real_run(*args, **kwargs)

    def rule(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        out = real_rule(*args, **kwargs)
        count += out is not None
        return out

    monkeypatch.setattr(shapes_module, "run_probe", run)
    monkeypatch.setattr(shapes_module, "probe_by_rule", rule)
    compiled = netspec.compile_spec(spec)
    return count, compiled


def test_a_long_chain_runs_each_distinct_layer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    runs, c = _meta_runs(monkeypatch, _chain(400))
    assert runs == 2  # Linear(16 -> 16) on (B, 16), ReLU on (B, 16)
    assert {n.shape for n in c.graph.nodes} == {"(B, 16)"}
    assert len({id(n.value) for n in c.graph.nodes}) == 400  # each node has tensors of its own
    assert sum(p.numel() for p in c.module.parameters()) == 200 * (16 * 16 + 16)


def test_a_different_shape_or_argument_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [
        {"Linear": {"out_features": 8}},
        {"Linear": {"out_features": 8}},
        {"Linear": {"out_features": 8}},
        {"Linear": {"out_features": 8, "bias": False}},
        {"flatten": 1},
        {"flatten": 1},
    ]
    runs, c = _meta_runs(monkeypatch, {"name": "t", "inputs": {"x": [4]}, "nodes": nodes})
    assert runs == 4  # 4 -> 8, 8 -> 8 (reused once), bias=False, flatten (reused once)
    assert [n.params for n in c.graph.nodes] == [40, 72, 72, 64, 0, 0]


def test_custom_modules_run_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """User code may depend on more than its arguments and input shapes: never reused."""
    calls = []

    class Counted(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            return x

    netspec.register_module(Counted, name="CostCounted")
    try:
        netspec.compile_spec({"name": "t", "inputs": {"x": [4]}, "nodes": ["CostCounted"] * 3})
    finally:
        LAYERS.remove("CostCounted")
    assert calls == [2, 3] * 3
