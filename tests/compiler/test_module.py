"""Compiled specs are ordinary torch modules: torch.compile, torch.export, torch.jit.trace,
pickling (``torch.save(model)``) and deepcopy all work, and ``.code`` is plain Python with one
assignment per node.

torch.compile with its default backend (inductor) builds C++ kernels with gcc: about a minute
on 2 CPU cores, so that test is marked slow; the fast tests use ``fullgraph=True`` with the
``aot_eager`` backend, which checks the same thing that matters here -- dynamo captures the
generated forward whole, with no graph break.
"""

from __future__ import annotations

import ast
import copy
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import netspec
from netspec.api import compile_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"


def build(name: str, input_shapes: dict[str, list[int]] | None = None, **params) -> torch.fx.GraphModule:
    overrides = [f"inputs.{k}.shape={v}" for k, v in (input_shapes or {}).items()]
    spec = netspec.load_spec(SPECS / f"{name}.yaml", overrides=overrides)
    return netspec.build_model(spec, **params).eval()


def inputs_for(model: torch.fx.GraphModule, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn((batch, *v.shape[1:]), generator=g) for v in model.netspec_graph.inputs.values())


# ---- torch.compile -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shapes",
    [
        ("lenet", None),
        ("two_input_net", None),  # two inputs
        ("unet", {"image": [3, 36, 44]}),  # blocks (nested GraphModules), pad_to, cat
        ("mlp", None),  # repeat
    ],
)
def test_torch_compile_captures_the_whole_forward(name, shapes) -> None:
    torch._dynamo.reset()
    model = build(name, shapes)
    x = inputs_for(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # fullgraph: a break raises
    with torch.no_grad():
        assert_close(compiled(*x), model(*x))


@pytest.mark.slow
def test_torch_compile_default_backend() -> None:
    """Inductor (C++ codegen through gcc on CPU): about a minute for LeNet on 2 cores."""
    torch._dynamo.reset()
    model = build("lenet")
    x = inputs_for(model, batch=4)
    compiled = torch.compile(model)
    with torch.no_grad():
        assert_close(compiled(*x), model(*x), rtol=1e-5, atol=1e-5)


# ---- torch.export / torch.jit.trace ------------------------------------------------------


@pytest.mark.parametrize(
    "name,shapes",
    [
        ("lenet", None),
        ("two_input_net", None),
        ("resnet50_extra_input", {"image": [3, 64, 64]}),  # a scalar input, a torchvision backbone
        ("resnet50_extra_output", {"image": [3, 64, 64]}),  # a tuple of outputs
    ],
)
def test_torch_export(name, shapes) -> None:
    model = build(name, shapes)
    x = inputs_for(model)
    exported = torch.export.export(model, x)
    with torch.no_grad():
        want = model(*x)
        got = exported.module()(*x)
    assert_close(got, want)


def test_torch_export_unet_with_dynamic_batch_and_size() -> None:
    """One export serves any batch and any H, W (U-Net pads odd sizes at run time). The ranges are
    torch's to infer (Dim.AUTO): the bounds it can prove differ between torch versions."""
    from torch.export import Dim

    model = build("unet", {"image": [3, 36, 44]})
    (x,) = inputs_for(model)
    dims = {"image": {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}}
    exported = torch.export.export(model, (x,), dynamic_shapes=dims).module()
    # torch 2.11 specialises the parity of H and W at each level (a hand-written U-Net alike), so
    # its export serves sizes 32k away from the example's only; 2.14's serves any size
    shapes = [(3, 3, 37, 45), (1, 3, 64, 33)] if torch.__version__ >= "2.14" else [(3, 3, 36, 44), (1, 3, 68, 76)]
    for shape in shapes:
        y = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert_close(exported(y), model(y), rtol=1e-5, atol=1e-5)


def test_torch_jit_trace() -> None:
    model = build("two_input_net")
    x = inputs_for(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated in torch 2.9+
        traced = torch.jit.trace(model, x)
    with torch.no_grad():
        assert_close(traced(*x), model(*x))


# ---- pickling ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,shapes", [("lenet", None), ("unet", {"image": [3, 36, 44]}), ("mlp", None)])
def test_whole_model_pickles_and_deepcopies(name, shapes) -> None:
    """``torch.save(model)`` re-traces the generated code on load; netspec's helper functions
    (``pad_to_match``) stay leaves, so blocks with shape-dependent padding load back."""
    model = build(name, shapes)
    x = inputs_for(model)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False).eval()
    copied = copy.deepcopy(model)
    with torch.no_grad():
        want = model(*x)
        assert_close(loaded(*x), want)
        assert_close(copied(*x), want)


def test_pickled_model_loads_in_a_fresh_process(tmp_path) -> None:
    model = build("unet", {"image": [3, 36, 44]})
    (x,) = inputs_for(model, batch=1)
    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x, "y": model(x).detach()}, tmp_path / "io.pt")
    code = (
        "import torch, sys\n"
        "m = torch.load(sys.argv[1], weights_only=False).eval()\n"
        "d = torch.load(sys.argv[2])\n"
        "torch.testing.assert_close(m(d['x']), d['y'])\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.pt"), str(tmp_path / "io.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]


# ---- generated code ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet", "two_input_net", "unet", "mlp", "small_resnet", "resnet50_extra_output"])
def test_code_is_valid_python_with_one_assignment_per_node(name) -> None:
    c = compile_spec(SPECS / f"{name}.yaml")
    modules = [("", c.module, c.graph)]
    for where, gm, graph in modules:  # blocks and repeats are GraphModules with their own code
        for node in graph.nodes:
            if node.kind in ("block", "repeat", "group"):
                modules.append((f"{where}.{node.name}".lstrip("."), gm.get_submodule(node.name), node.sub))
    assert len(modules) > 1 or name in ("lenet", "two_input_net", "resnet50_extra_output")
    for where, gm, graph in modules:
        tree = ast.parse(gm.code)
        (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert fn.name == "forward"
        assert [a.arg for a in fn.args.args] == ["self", *graph.inputs], where
        assigns = [s for s in fn.body if isinstance(s, ast.Assign)]
        assert [s.targets[0].id for s in assigns] == [n.var for n in graph.nodes], where  # type: ignore[attr-defined]
        assert len(fn.body) == len(graph.nodes) + 1 and isinstance(fn.body[-1], ast.Return), where
        compile(gm.code, f"<{name}:{where or 'forward'}>", "exec")


# ---- nodes computed only in training -------------------------------------------------------

TRAINING_ONLY = """
name: aux_net
inputs: {x: [6]}
nodes:
  - body: {Linear: {out_features: 8}}
  - aux: [{Dropout: 0.5}, {Linear: {out_features: 3}}]
    training_only: true
  - drop: {Dropout: 0.2, from: body}
  - head: {Linear: {out_features: 3}}
outputs: {logits: head, aux: aux}
output_type: $kind
"""


class AuxNet(torch.nn.Module):
    """The hand-written module: an auxiliary head called only in training, as GoogLeNet's aux1."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(6, 8)
        self.aux = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
        self.drop = torch.nn.Dropout(0.2)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.body(x)
        aux = self.aux(x) if self.training else None
        logits = self.head(self.drop(x))
        return (logits, aux) if self.training else logits


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_training_only_nodes_run_in_training_as_a_hand_written_forward(kind: str) -> None:
    model = compile_spec(netspec.load_spec(text=TRAINING_ONLY.replace("$kind", kind))).module
    reference = AuxNet()
    reference.load_state_dict(model.state_dict(), strict=True)
    assert "    if self.training:\n        aux = self.aux(body)" in model.code
    x = torch.randn(5, 6)
    torch.manual_seed(3)
    want = reference.train()(x)
    torch.manual_seed(3)  # the same dropout draws, in the same order
    got = model.train()(x)
    got = tuple(got.values()) if kind == "dict" else got
    assert_close(got, want)
    with torch.no_grad():
        want, got = reference.eval()(x), model.eval()(x)
    assert_close(got["logits"] if kind == "dict" else got, want)
    assert kind == "tuple" or list(got) == ["logits"]


def test_training_only_nodes_are_left_out_of_the_graph_export_and_pickle_read() -> None:
    model = compile_spec(netspec.load_spec(text=TRAINING_ONLY.replace("$kind", "tuple"))).module.eval()
    x = torch.randn(4, 6)
    want = model(x)
    output = next(n for n in model.graph.nodes if n.op == "output")
    assert output.args[0].name == "head"  # the graph is eval mode's; the code adds training's return
    program = torch.export.export(model, (x,))
    assert_close(program.module()(x), want)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    assert_close(torch.load(buf, weights_only=False).eval()(x), want)
    assert_close(copy.deepcopy(model).train()(x)[0].shape, want.shape)
