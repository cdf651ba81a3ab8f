"""``--format python``: the ejected file reproduces every spec of specs/ exactly, in a fresh
Python process where netspec cannot be imported, from a netspec checkpoint loaded as it is."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import netspec
from netspec.interop.eject import eject
from netspec.training.checkpoint import CHECKPOINT_FORMAT

from .cases import NAMES, SLOW, compiled, expected

# Run in a fresh interpreter (-I: no PYTHONPATH, no user site) with `import netspec` made to fail.
RUNNER = textwrap.dedent("""
    import importlib.util, json, sys
    sys.modules["netspec"] = None  # an ejected file that imports netspec fails here
    import torch

    results = {}
    for case in json.loads(sys.argv[1]):
        try:
            spec = importlib.util.spec_from_file_location(case["module"], case["file"])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = getattr(module, case["cls"]).load(case["checkpoint"])
            io = torch.load(case["io"], weights_only=True)
            torch.manual_seed(0)
            with torch.no_grad():  # as the expected outputs (Transformer layers take their fast path)
                out = model(*io["inputs"])
            out = list(out.values()) if isinstance(out, dict) else [out] if torch.is_tensor(out) else list(out)
            for got, want in zip(out, io["outputs"], strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=0)
            results[case["module"]] = "ok"
        except Exception as e:
            results[case["module"]] = f"{type(e).__name__}: {e}"
    print(json.dumps(results))
""")

ALLOWED_IMPORTS = {
    "__future__",
    "torch",
    "torchvision",
    "timm",
    "math",
    "fnmatch",
    "collections",
    "safetensors",
}  # timm: its model nodes; safetensors: `load` of a .safetensors file


def _eject_case(name: str, folder, c=None) -> dict:
    c = c if c is not None else compiled(name)
    source = eject(c, module_name=name)
    tree = ast.parse(source)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= ALLOWED_IMPORTS, imported
    (folder / f"{name}.py").write_text(source)
    torch.save({"format": CHECKPOINT_FORMAT, "model": c.module.state_dict()}, folder / f"{name}.pt")
    inputs, outputs = expected(c)
    torch.save({"inputs": inputs, "outputs": outputs}, folder / f"{name}.io.pt")
    cls = [n.name for n in tree.body if isinstance(n, ast.ClassDef)][-1]
    return {
        "module": name,
        "file": str(folder / f"{name}.py"),
        "cls": cls,
        "checkpoint": str(folder / f"{name}.pt"),
        "io": str(folder / f"{name}.io.pt"),
    }


def _run_fresh(cases: list[dict], folder) -> dict[str, str]:
    script = folder / "runner.py"
    script.write_text(RUNNER)
    r = subprocess.run(
        [sys.executable, "-I", str(script), json.dumps(cases)], capture_output=True, text=True, timeout=600, cwd=folder
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fast_results(tmp_path_factory) -> dict[str, str]:
    """Every quick spec ejected, then all run in one fresh process (one torch import)."""
    folder = tmp_path_factory.mktemp("ejected")
    return _run_fresh([_eject_case(n, folder) for n in NAMES if n not in SLOW], folder)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in SLOW])
def test_ejected_file_reproduces_the_model_without_netspec(name, fast_results) -> None:
    assert fast_results[name] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_ejected_big_models_reproduce_the_model_without_netspec(name, tmp_path) -> None:
    assert _run_fresh([_eject_case(name, tmp_path)], tmp_path)[name] == "ok"


def test_ejected_file_loads_safetensors_weights_without_netspec(tmp_path) -> None:
    """`Model.load("w.safetensors")` reads what `netspec export --format safetensors` writes
    (tied weights included: siamese's shared branch)."""
    from netspec.files.safetensorfile import save_safetensors

    cases = [_eject_case(name, tmp_path) for name in ("lenet", "siamese")]
    for case in cases:
        state = torch.load(case["checkpoint"], weights_only=True)["model"]
        case["checkpoint"] = case["checkpoint"].replace(".pt", ".safetensors")
        save_safetensors(state, tmp_path / case["checkpoint"], {"netspec": "1"})
    assert _run_fresh(cases, tmp_path) == {"lenet": "ok", "siamese": "ok"}


KEYED = """name: keyed
inputs: {x: [3, 8, 8]}
nodes:
  - convs.0: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}}
  - bns.0: BatchNorm2d
  - relu: relu
  - convs.1: {Conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}}
  - bns.1: BatchNorm2d
  - head.pool: {AdaptiveAvgPool2d: {output_size: 1}}
  - head.flat: Flatten
  - head.fc: {Linear: {out_features: 3}}
"""


def test_nodes_at_a_key_are_written_in_their_holders(tmp_path) -> None:
    """``convs.0``, ``head.fc`` (nodes at a key): each holder made once, before its first node."""
    from netspec.api import compile_spec

    torch.manual_seed(0)
    c = compile_spec(netspec.load_spec(text=KEYED))
    source = eject(c, module_name="keyed")
    assert "        self.convs = nn.Module()\n        self.convs.add_module('0', nn.Conv2d(" in source
    assert source.count("self.convs = nn.Module()") == 1 and "        self.head.fc = nn.Linear(4, 3)\n" in source
    assert _run_fresh([_eject_case("keyed", tmp_path, c)], tmp_path) == {"keyed": "ok"}


ALIASED = """name: aliased
inputs: {x: [8]}
nodes:
  - first.fc: {Linear: {out_features: 8}}
  - second: {same_as: first.fc}
outputs: [second]
aliases: {pos: first.fc}
"""


def test_aliases_are_the_same_module_under_a_second_name(tmp_path) -> None:
    """``aliases: {pos: first.fc}``: ``self.pos = self.first.fc``; the checkpoint, with both
    names' keys, loads strictly into the ejected class and gives the same outputs."""
    from netspec.api import compile_spec

    torch.manual_seed(0)
    c = compile_spec(netspec.load_spec(text=ALIASED))
    assert {"pos.weight", "first.fc.weight"} <= set(c.module.state_dict())
    source = eject(c, module_name="aliased")
    assert "        self.pos = self.first.fc  # one module" in source
    assert _run_fresh([_eject_case("aliased", tmp_path, c)], tmp_path) == {"aliased": "ok"}


def test_blocks_become_classes_with_the_differing_values_as_parameters() -> None:
    """U-Net's nine DoubleConv uses are one class; channel counts are its arguments, named
    after the block's parameter `out` where the values are the same."""
    source = eject(compiled("unet"))
    assert source.count("class DoubleConv(") == 1 and "class DoubleConv2" not in source
    assert "def __init__(self, in_channels: int, out: int) -> None:" in source
    assert "self.x1 = DoubleConv(in_channels=3, out=64)" in source
    assert "pad_to = pad_to_match(up, skip)" in source and "def pad_to_match(" in source
    assert "import netspec" not in source and "from netspec" not in source


def test_structure_variants_get_a_class_each_and_chains_become_sequential() -> None:
    source = eject(compiled("small_resnet"))
    assert "class Residual(nn.Module):" in source and "class Residual2(nn.Module):" in source
    assert "self.stage1 = nn.Sequential(*(Residual(out=16) for _ in range(2)))" in source


def test_repeat_with_keyword_inputs_is_a_module_list_with_a_loop() -> None:
    source = eject(compiled("transformer_classifier"))
    assert "class TransformerEncoderLayerRepeat(nn.ModuleList):" in source
    assert "x = layer(x, src_key_padding_mask=pad)" in source
    assert "self.pos = nn.Parameter(nn.init.normal_(torch.empty(32, 64), std=0.02))" in source


@pytest.mark.slow
def test_torchvision_node_keeps_freeze_and_replacement() -> None:
    source = eject(compiled("resnet18_finetune"))
    assert "torchvision.models.resnet18()" in source and "net.requires_grad_(False)  # freeze: true" in source
    assert "net.fc = nn.Linear(512, 10)" in source
    namespace: dict = {}
    exec(compile(source, "resnet18_finetune.py", "exec"), namespace)
    model = namespace["Resnet18Finetune"]()
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["net.fc.bias", "net.fc.weight"]


def test_pattern_freeze_and_named_group_members() -> None:
    import netspec

    spec = netspec.load_spec(
        text="""
name: frozen
inputs: {x: [4]}
nodes:
  - body:
      - a: {Linear: {out_features: 4}}
      - ReLU
      - b: {Linear: {out_features: 2}}
    freeze: [a.*]
"""
    )
    c = netspec.compile_spec(spec)
    source = eject(c)
    assert "freeze(self.body, ['a.*'])" in source
    namespace: dict = {}
    exec(compile(source, "frozen.py", "exec"), namespace)
    model = namespace["Frozen"]()
    model.load_state_dict(c.module.state_dict())
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["body.a.weight", "body.a.bias"]
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), c.module(x), rtol=0, atol=0)


def test_every_helper_the_generated_forward_calls_can_be_copied_into_a_file() -> None:
    """Each function of nodes/functional.py copies with what it refers to (a helper calling a
    tensor method of its own name, `x.unfold` in `unfold_windows`, once recursed forever)."""
    import inspect

    from netspec.interop.pysource import helper_sources
    from netspec.nodes import functional

    helpers = {
        n: f for n, f in vars(functional).items() if inspect.isfunction(f) and f.__module__ == functional.__name__
    }
    _, blocks = helper_sources(helpers)
    for name in helpers:
        assert any(b.startswith(f"def {name}(") for b in blocks), name
    ast.parse("\n".join(blocks))
