"""Property tests (hypothesis).

(a) Random mutations of the valid specs in ``specs/`` -- a key deleted, a value replaced by
    a wrong type or an extreme number, a reference renamed or swapped, list items swapped or
    duplicated -- either compile or raise a :class:`SpecError` whose text is one line. Any
    other exception is a bug.
(b) Randomly generated valid graphs (chains and DAGs of Conv2d / BatchNorm / ReLU / MaxPool /
    Flatten / Linear / Dropout with cat and add skip connections) compile, their inferred
    shapes equal the shapes worked out independently here, and they run forward and
    backward with those shapes.

The default run is small (< 60 s); ``pytest -m slow tests/test_properties.py`` runs the
same properties with many more examples.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netspec.api import compile_spec, load_spec
from netspec.compiler.module import build_module
from netspec.compiler.shapes import META_BATCH, Options, infer_shapes, resolve_params
from netspec.compiler.source import load_document
from netspec.compiler.spec import document_of
from netspec.errors import SpecError

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
BUILD_LIMIT = 1_000_000  # build real modules for mutated specs up to this many parameters

FAST = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])


# =============================================================================================
# (a) mutations of the shipped specs
# =============================================================================================


def _documents() -> list[tuple[str, Any]]:
    out = []
    for path in SPECS:
        try:
            out.append((path.name, load_document(path).data))
        except SpecError:  # a spec being written by someone else right now: not ours to judge
            continue
    return out


DOCUMENTS = _documents()


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``data`` (not the root)."""
    out: list[tuple] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in [k, *_strings(v)] if isinstance(s, str)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


WEIRD_SCALARS = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2,
            10**12,
            -(10**12),
            2**63,
            0.5,
            -0.0,
            float("nan"),
            float("inf"),
            float("-inf"),
            "",
            " ",
            "x",
            "required",
            "$",
            "${",
            "$nope",
            "${nope}",
            "${1/0}",
            "${x.__class__}",
            "${__import__('os')}",
            "${10**10**10}",
            "${" + "(" * 200 + "}",
            "a" * 10_000,
            "\u202e\u0000\U0001f600",
            "Conv2d",
            "Linear",
            "cat",
            "add",
            "resnet18",
            "x",
            "image",
            "nodes",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
WEIRD_VALUES = st.one_of(
    WEIRD_SCALARS,
    st.lists(WEIRD_SCALARS, max_size=4),
    st.dictionaries(
        st.sampled_from(["out_features", "from", "op", "x", "shape", "nodes", "?"]), WEIRD_SCALARS, max_size=3
    ),
)

MUTATIONS = ["delete", "replace", "replace", "rename_ref", "swap_ref", "swap_items", "duplicate_item", "rename_key"]


def _mutate(data: Any, draw: Any) -> tuple[Any, list[str]]:
    """Apply 1 to 3 random mutations; returns the data and a description for the report."""
    data = copy.deepcopy(data)
    done = []
    for _ in range(draw(st.integers(1, 3), label="count")):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths), label="path")
        parent = _get(data, path[:-1])
        key = path[-1]
        kind = draw(st.sampled_from(MUTATIONS), label="kind")
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(WEIRD_VALUES, label="value")
        elif kind in ("rename_ref", "swap_ref"):
            strings = _strings(data) or ["x"]
            if kind == "swap_ref":
                parent[key] = draw(st.sampled_from(strings), label="other")
            else:
                old = parent[key] if isinstance(parent[key], str) else draw(st.sampled_from(strings))
                parent[key] = old + draw(st.sampled_from(["_", "1", "x", "\u00e9", " "]))
        elif kind == "swap_items" and isinstance(parent, list) and len(parent) > 1:
            j = draw(st.integers(0, len(parent) - 1), label="j")
            parent[key], parent[j] = parent[j], parent[key]
        elif kind == "duplicate_item" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif kind == "rename_key" and isinstance(parent, dict):
            new = draw(st.sampled_from(_strings(data) + ["from", "op", "when", "repeat", "nodes", "zz"]))
            value = parent.pop(key)
            parent[new] = value
        else:
            continue
        done.append(f"{kind} at {path}")
    return data, done


def _check_one_line(err: SpecError) -> None:
    text = str(err)
    assert "\n" not in text and text.strip() == text and text, repr(text)
    assert "Traceback" not in text


def compile_or_spec_error(data: Any, name: str) -> None:
    """The property: a SpecError (one line), or a spec that compiles and builds."""
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:  # only plain data is dumped; a mutation cannot make it unrepresentable
        raise
    try:
        spec = load_spec(name, text=text)
        doc = document_of(spec)
        try:
            graph = infer_shapes(spec, resolve_params(spec), Options(base_dir=Path(__file__).parent))
            if graph.total_params() <= BUILD_LIMIT:
                build_module(graph)
        except SpecError as e:
            raise e.with_location(doc.locate(e.path)) from None
    except SpecError as e:
        _check_one_line(e)


def _mutation_property(data_strategy: Any) -> None:
    name, doc = data_strategy.draw(st.sampled_from(DOCUMENTS), label="spec")
    mutated, _ = _mutate(doc, data_strategy.draw)
    compile_or_spec_error(mutated, name)


@pytest.mark.skipif(not DOCUMENTS, reason="no specs in specs/")
@FAST
@given(st.data())
def test_mutated_specs_compile_or_raise_spec_error(data: st.DataObject) -> None:
    _mutation_property(data)


@pytest.mark.slow
@pytest.mark.skipif(not DOCUMENTS, reason="no specs in specs/")
@SLOW
@given(st.data())
def test_mutated_specs_compile_or_raise_spec_error_many(data: st.DataObject) -> None:
    _mutation_property(data)


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_unmutated_specs_pass_the_same_check(spec: Path) -> None:
    """The baseline the mutations start from: each shipped spec passes the property itself."""
    compile_or_spec_error(load_document(spec).data, spec.name)


@FAST
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_a_spec_error_or_a_spec(text: str) -> None:
    try:
        load_spec("fuzz.yaml", text=text)
    except SpecError as e:
        _check_one_line(e)


EXPR_TOKENS = [
    "0",
    "1",
    "2",
    "7",
    "64",
    "-1",
    "0.5",
    "1e308",
    "10",
    "x",
    "n",
    "s",
    "true",
    "nope",
    "__class__",
    " + ",
    " - ",
    " * ",
    " / ",
    " // ",
    " % ",
    " ** ",
    " < ",
    " == ",
    " and ",
    " or ",
    "not ",
    " if ",
    " else ",
    "(",
    ")",
    "[",
    "]",
    ".",
    ",",
    "channels",
    "shape",
    "features",
    "'a'",
    "min(",
    "max(",
    "int(",
    "len(",
    "abs(",
    "round(",
    "float(",
    "__import__(",
    "lambda: ",
    "{",
    "}",
]


def _expression_property(tokens: list[str]) -> None:
    from netspec.compiler.expr import ShapeInfo, evaluate

    try:
        evaluate("".join(tokens), {"x": ShapeInfo((3, 8, 8)), "n": 4, "s": "abc"})
    except SpecError as e:
        _check_one_line(e)


@FAST
@given(tokens=st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=12))
def test_arbitrary_expressions_evaluate_or_raise_spec_error(tokens: list[str]) -> None:
    """Expressions are interpreted over a whitelist: garbage gives a SpecError, never a crash."""
    _expression_property(tokens)


@pytest.mark.slow
@settings(deadline=None, max_examples=10_000)
@given(tokens=st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=16))
def test_arbitrary_expressions_evaluate_or_raise_spec_error_many(tokens: list[str]) -> None:
    _expression_property(tokens)


# =============================================================================================
# (b) random valid graphs
# =============================================================================================


class _Graph:
    """Builds a random valid spec and tracks every node's per-sample shape independently."""

    def __init__(self, draw: Any, image: bool):
        self.draw = draw
        self.nodes: list[dict[str, Any]] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        if image:
            shape = (draw(st.integers(1, 4)), draw(st.integers(1, 10)), draw(st.integers(1, 10)))
        else:
            shape = (draw(st.integers(1, 16)),)
        self.input_shape = shape
        self.shapes["x"] = shape
        self.current = "x"

    def add(self, body: dict[str, Any], shape: tuple[int, ...], src: str | list[str] | None = None) -> str:
        name = f"n{len(self.nodes)}"
        node: dict[str, Any] = {name: body}
        if src is not None:
            node["from"] = src
        elif self.draw(st.booleans(), label="explicit_from"):
            node["from"] = self.current  # same as the default: the previous node
        self.nodes.append(node)
        self.shapes[name] = shape
        self.current = name
        return name

    # one layer applied to `src` (default: the current node); returns (body, shape)
    def layer(self, shape: tuple[int, ...]) -> tuple[dict[str, Any], tuple[int, ...]]:
        draw = self.draw
        if len(shape) == 3:
            c, h, w = shape
            kinds = ["conv", "conv", "bn", "relu"] + (["pool"] if h >= 2 and w >= 2 else [])
            kind = draw(st.sampled_from(kinds), label="image_layer")
            if kind == "conv":
                out = draw(st.integers(1, 8))
                k = draw(st.sampled_from([1, 3]))
                return {"Conv2d": {"out_channels": out, "kernel_size": k, "padding": k // 2}}, (out, h, w)
            if kind == "bn":
                return {"BatchNorm2d": {}}, shape
            if kind == "relu":
                return {"ReLU": {}}, shape
            return {"MaxPool2d": 2}, (c, h // 2, w // 2)
        (_,) = shape  # a vector: one feature dimension
        kind = draw(st.sampled_from(["linear", "linear", "bn", "relu", "dropout"]), label="vector_layer")
        if kind == "linear":
            out = draw(st.integers(1, 16))
            return {"Linear": {"out_features": out}}, (out,)
        if kind == "bn":
            return {"BatchNorm1d": {}}, shape
        if kind == "relu":
            return {"ReLU": {}}, shape
        return {"Dropout": {"p": 0.1}}, shape

    def step(self) -> None:
        draw = self.draw
        shape = self.shapes[self.current]
        action = draw(st.sampled_from(["layer", "layer", "branch", "flatten"]), label="action")
        if action == "flatten" and len(shape) == 3:
            self.add({"Flatten": {}}, (math.prod(shape),))
            return
        if action != "branch":
            body, new = self.layer(shape)
            self.add(body, new)
            return
        # a branch from an earlier value with the same spatial size, merged back by cat or add
        same_rank = [n for n, s in self.shapes.items() if len(s) == len(shape) and s[1:] == shape[1:]]
        start = draw(st.sampled_from(same_rank), label="branch_from")
        main = self.current
        body, bshape = self.layer(self.shapes[start])
        if bshape[1:] != shape[1:]:  # a pool changed the size: plain layer instead
            body, new = self.layer(shape)
            self.add(body, new)
            return
        branch = self.add(body, bshape, src=start)
        if bshape == shape and draw(st.booleans(), label="use_add"):
            self._merge("add", main, branch, shape)
        else:
            merged = (shape[0] + bshape[0], *shape[1:])
            self._merge("cat", main, branch, merged)

    def _merge(self, op: str, a: str, b: str, shape: tuple[int, ...]) -> None:
        order = [a, b] if self.draw(st.booleans(), label="order") else [b, a]
        name = f"n{len(self.nodes)}"
        self.nodes.append({name: {op: order}})
        self.shapes[name] = shape
        self.current = name

    def spec(self, extra_output: str | None) -> dict[str, Any]:
        outputs = [self.current] + ([extra_output] if extra_output else [])
        return {
            "name": "random_graph",
            "inputs": {"x": list(self.input_shape)},
            "nodes": self.nodes,
            "outputs": outputs,
        }


@st.composite
def random_graphs(draw: Any) -> tuple[dict[str, Any], list[tuple[int, ...]]]:
    g = _Graph(draw, image=draw(st.booleans(), label="image"))
    for _ in range(draw(st.integers(1, 10), label="steps")):
        g.step()
    extra = None
    if len(g.nodes) > 1 and draw(st.booleans(), label="two_outputs"):
        extra = draw(st.sampled_from([n for n in g.shapes if n not in ("x", g.current)]))
    spec = g.spec(extra)
    expected = [g.shapes[o] for o in spec["outputs"]]
    return spec, expected


def _graph_property(case: tuple[dict[str, Any], list[tuple[int, ...]]]) -> None:
    spec, expected = case
    compiled = compile_spec(spec)
    graph = compiled.graph
    by_name = {n.name: n for n in graph.nodes}
    inferred = [tuple(by_name[ref].value.shape) for _, ref in graph.outputs]
    assert inferred == [(META_BATCH, *s) for s in expected], (inferred, expected)
    model = compiled.module.train()
    batch = 3
    x = torch.randn(batch, *spec["inputs"]["x"], requires_grad=True)
    out = model(x)
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in outs] == [(batch, *s) for s in expected]
    loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
    model.eval()
    with torch.no_grad():
        again = model(x)
    again = again if isinstance(again, tuple) else (again,)
    assert [tuple(o.shape) for o in again] == [(batch, *s) for s in expected]


@FAST
@given(random_graphs())
def test_random_graphs_compile_and_run(case: tuple[dict[str, Any], list[tuple[int, ...]]]) -> None:
    _graph_property(case)


@pytest.mark.slow
@settings(deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_random_graphs_compile_and_run_many(case: tuple[dict[str, Any], list[tuple[int, ...]]]) -> None:
    _graph_property(case)
