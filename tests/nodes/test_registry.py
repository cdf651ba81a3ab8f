"""Every registered layer and op: the shapes netspec infers are the shapes a real forward gives.

Parametrised over the whole registries (timm's tests/test_models.py style), so a new layer or
op is tested without writing a test; the arguments and inputs each needs come from
``tests/layer_examples.py``, and one without an example fails instead of being skipped. Each
entry is compiled as a one-node spec, then run for real at two batch sizes; every output
(tuples included: an LSTM's ``h_n`` is ``(num_layers, B, H)``) must have the size the two
meta probes predict for that batch.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from layer_examples import LAYER_EXAMPLES, OP_EXAMPLES, Example, I

from netspec.api import compile_spec
from netspec.compiler.dims import sizes_at
from netspec.nodes.layers import LAYERS
from netspec.nodes.ops import OPS

BATCHES = (1, 5)
_DTYPES = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}


def _param(name: str, examples: dict[str, Example]) -> Any:
    ex = examples.get(name)
    return pytest.param(name, marks=pytest.mark.slow) if ex is not None and ex.slow else name


LAYER_NAMES = sorted(n for n, e in LAYERS.items() if not e.custom)
OP_NAMES = sorted(OPS)


def _input_spec(i: I) -> dict[str, Any]:
    return {"shape": list(i.shape), "dtype": i.dtype}


def _tensor(i: I, batch: int, g: torch.Generator) -> torch.Tensor:
    shape = (batch, *i.shape)
    if i.dtype == "float32":
        return torch.rand(shape, generator=g)  # [0, 1): valid for log, sqrt, bernoulli
    return torch.randint(0, i.high or 2, shape, generator=g).to(_DTYPES[i.dtype])


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        return tuple(_shapes(o) for o in out)
    return None


def _check_against_real_forward(spec: dict[str, Any], inputs: list[I]) -> None:
    c = compile_spec(spec)
    node = c.graph.node("node")
    model = c.module.eval()
    for batch in BATCHES:
        g = torch.Generator().manual_seed(batch)
        with torch.no_grad():
            out = model(*[_tensor(i, batch, g) for i in inputs])
        assert _shapes(out) == sizes_at(node.value, node.twin, batch), (batch, node.shape)


@pytest.mark.parametrize("name", [_param(n, LAYER_EXAMPLES) for n in LAYER_NAMES])
def test_layer_shapes_match_a_real_forward(name: str) -> None:
    entry = LAYERS[name]
    ex = LAYER_EXAMPLES.get(name)
    if ex is None:
        assert not entry.required and entry.min_inputs == 1, (
            f"{name} needs arguments ({', '.join(entry.required) or 'none'}) or {entry.min_inputs} inputs: "
            "add an example to tests/layer_examples.py"
        )
        ex = Example()
    names = [f"in{i}" for i in range(len(ex.inputs))]
    inputs = {n: _input_spec(i) for n, i in zip(names, ex.inputs)}
    source: Any = names
    if ex.kw:  # by forward argument name: the positional ones, then the keywords
        source = dict(zip(entry.tensor_inputs, names))
        for key, i in ex.kw.items():
            inputs[f"kw_{key}"] = _input_spec(i)  # type: ignore[arg-type]
            source[key] = f"kw_{key}"
    spec = {"name": "t", "inputs": inputs, "nodes": [{"node": {name: ex.args}, "from": source}]}
    _check_against_real_forward(spec, ex.inputs + list(ex.kw.values()))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [_param(n, OP_EXAMPLES) for n in OP_NAMES])
def test_op_shapes_match_a_real_forward(name: str) -> None:
    ex = OP_EXAMPLES.get(name)
    assert ex is not None, f"op `{name}` has no example: add one to OP_EXAMPLES in tests/layer_examples.py"
    names = [f"in{i}" for i in range(len(ex.inputs))]
    nodes: list[dict[str, Any]] = [{"op": name, "name": "node", "args": ex.args, "from": names}]
    if name == "item":  # item picks from a tuple: make one
        nodes.insert(0, {"op": "chunk", "name": "parts", "args": {"chunks": 2, "dim": 2}, "from": names})
        nodes[1]["from"] = "parts"
    if name == "grid":  # a grid is of 1-d tensors, no batch's: two Buffer nodes, the grid added to the input
        axes = [
            {"op": "Buffer", "name": f"axis{k}", "args": {"value": [0.5 * v for v in range(n)]}}
            for k, n in ((0, 3), (1, 4))
        ]
        nodes = [
            *axes,
            {**nodes[0], "name": "grid", "from": ["axis0", "axis1"]},
            {"op": "add", "name": "node", "from": ["in0", "grid"]},
        ]
    spec = {"name": "t", "inputs": {n: _input_spec(i) for n, i in zip(names, ex.inputs)}, "nodes": nodes}
    _check_against_real_forward(spec, ex.inputs)


def test_every_example_names_a_registered_entry() -> None:
    """A renamed or removed layer or op leaves no stale example behind."""
    assert sorted(set(LAYER_EXAMPLES) - set(LAYERS)) == []
    assert sorted(set(OP_EXAMPLES) - set(OPS)) == []
