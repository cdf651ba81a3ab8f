"""The Python API: load, build, parameters, round trips, builder, overrides."""

from __future__ import annotations

import pytest
import torch

import netspec
from netspec import Spec, node
from netspec.errors import SpecError

from speclist import HAS_TIMM, needs_timm

UNET = "specs/unet.yaml"


def test_build_model_from_dict_runs_forward():
    model = netspec.build_model(
        {
            "name": "m",
            "inputs": {"x": [1, 28, 28]},
            "nodes": [
                {"Conv2d": {"out_channels": 8, "kernel_size": 3}},
                "ReLU",
                {"Flatten": {}},
                {"Linear": {"out_features": 10}},
            ],
        }
    )
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # in_features was inferred: 8 * 26 * 26
    assert model.linear.in_features == 8 * 26 * 26


def test_params_override_changes_the_model(specs_dir):
    model = netspec.build_model(specs_dir / "unet.yaml", n_classes=5)
    assert model.logits.out_channels == 5
    with pytest.raises(SpecError, match=r"no spec parameter `n_clases`.*did you mean `n_classes`"):
        netspec.build_model(specs_dir / "unet.yaml", n_clases=5)


def test_unet_any_size_and_state_dict_names(specs_dir):
    model = netspec.build_model(specs_dir / "unet.yaml").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 67, 61))  # odd sizes: Up pads to the skip's size
    assert out.shape == (1, 2, 67, 61)
    keys = list(model.state_dict())
    assert keys[0] == "x1.conv2d.weight" and "up.up.weight" in keys and keys[-1] == "logits.bias"


def test_forward_takes_inputs_by_keyword_and_returns_dict():
    spec = {
        "name": "two",
        "inputs": {"a": [4], "b": [3]},
        "output_type": "dict",
        "nodes": [{"cat": ["a", "b"]}, {"h": {"Linear": {"out_features": 2}}}, {"p": {"Softmax": {"dim": 1}}}],
        "outputs": {"logits": "h", "probs": "p"},
    }
    model = netspec.build_model(spec)
    out = model(b=torch.zeros(5, 3), a=torch.zeros(5, 4))
    assert set(out) == {"logits", "probs"} and out["probs"].shape == (5, 2)


def test_several_outputs_are_a_tuple_in_declared_order():
    spec = {
        "name": "t",
        "inputs": {"x": [4]},
        "nodes": [{"f": {"Linear": {"out_features": 6}}}, {"g": {"Linear": {"out_features": 2}}}],
        "outputs": ["g", "f"],
    }
    g, f = netspec.build_model(spec)(torch.zeros(3, 4))
    assert g.shape == (3, 2) and f.shape == (3, 6)


def test_dump_and_load_round_trip_to_an_equal_spec(specs_dir):
    for path in sorted(specs_dir.glob("*.yaml")):
        if needs_timm(path) and not HAS_TIMM:
            continue  # tests/test_specs.py says it is skipped, and why
        spec = netspec.load_spec(path)
        again = netspec.load_spec("again.yaml", text=spec.to_yaml())
        assert again == spec, path.name


def test_builder_generates_a_family_of_specs():
    sizes = {}
    for width in (16, 32, 64):
        spec = Spec(
            name=f"mlp_{width}",
            inputs={"x": [784]},
            nodes=[node("Linear", out_features=width), node("ReLU"), node("Linear", out_features=10)],
        )
        model = netspec.build_model(spec)
        sizes[width] = sum(p.numel() for p in model.parameters())
        assert netspec.load_spec("x.yaml", text=spec.to_yaml()) == spec
    assert sizes == {w: 784 * w + w + w * 10 + 10 for w in (16, 32, 64)}


def test_generated_code_is_one_line_per_node_with_shapes(specs_dir):
    c = netspec.compile_spec(specs_dir / "unet.yaml")
    lines = [line for line in c.module.code.splitlines() if " = " in line]
    assert len(lines) == len(c.graph.nodes)
    assert "x1 = self.x1(image)" in lines[0] and "# (B, 64, 572, 572)" in lines[0]
    assert "= None" not in c.module.code


def test_repeat_and_when():
    spec = {
        "name": "r",
        "params": {"deep": True},
        "inputs": {"x": [8]},
        "nodes": [
            {"body": {"Linear": {"out_features": 8}}, "repeat": 3},
            {"extra": {"ReLU": {}}, "when": "$deep"},
            {"Linear": {"out_features": 2}},
        ],
    }
    c = netspec.compile_spec(spec)
    assert [n.name for n in c.graph.nodes] == ["body", "extra", "linear"]
    assert len(list(c.module.body.children())) == 3
    c2 = netspec.compile_spec(spec, deep=False)
    assert [n.name for n in c2.graph.nodes] == ["body", "linear"]


def test_custom_module_registration():
    @netspec.register_module
    class TimesTwo(torch.nn.Module):
        def __init__(self, in_features: int, scale: float = 2.0):
            super().__init__()
            self.scale, self.width = scale, in_features

        def forward(self, x):
            return x * self.scale

    model = netspec.build_model({"name": "c", "inputs": {"x": [5]}, "nodes": [{"TimesTwo": {"scale": 3.0}}]})
    assert model.timestwo.width == 5  # in_features inferred like for torch layers
    torch.testing.assert_close(model(torch.ones(1, 5)), torch.full((1, 5), 3.0))


def test_spec_imports_are_refused_unless_allowed(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\nimports: [os]\ninputs: {x: [2]}\nnodes:\n  - ReLU\n")
    with pytest.raises(SpecError, match=r"refused.*--allow-import os"):
        netspec.load_spec(tmp_path / "s.yaml")
    assert netspec.load_spec(tmp_path / "s.yaml", allow_imports=["os"]).name == "s"


def test_overrides_by_dotted_path(specs_dir):
    spec = netspec.load_spec(specs_dir / "unet.yaml", overrides=["n_classes=4", "inputs.image.shape=[3, 64, 64]"])
    assert spec.params["n_classes"] == 4 and spec.inputs["image"].shape == [3, 64, 64]
    with pytest.raises(SpecError, match="no such spec parameter"):
        netspec.load_spec(specs_dir / "unet.yaml", overrides=["n_clas=4"])


def test_entry_point_modules_are_registered(tmp_path):
    """An installed package declaring `netspec.modules` entry points adds layers by name, loaded
    the first time the layer registry is used (in a fresh process, as after `pip install`)."""
    import subprocess
    import sys

    (tmp_path / "ns_plugin_layers.py").write_text(
        "import torch\nclass Doubler(torch.nn.Module):\n    def forward(self, x):\n        return 2 * x\n"
    )
    dist = tmp_path / "ns_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ns-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[netspec.modules]\nDoubler = ns_plugin_layers:Doubler\n")
    script = (
        "import sys, torch, netspec\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "model = netspec.build_model({'name': 'p', 'inputs': {'x': [3]}, 'nodes': ['Doubler']})\n"
        "print(model(torch.ones(1, 3)).tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[[2.0, 2.0, 2.0]]", out.stderr


def test_load_spec_takes_text_alone():
    """The README's `netspec.load_spec(text=...)`: no source needed (issue 9)."""
    spec = netspec.load_spec(text="name: m\ninputs: {x: [3]}\nnodes: [ReLU]\n")
    assert spec.nodes[0].op == "ReLU"
    assert netspec.load_spec(text=spec.to_yaml()) == spec
    with pytest.raises(TypeError, match="a path, text, a dict or a Spec"):
        netspec.load_spec()


def test_compile_table_keeps_notes_whole(tmp_path, capsys):
    from netspec.cli import main

    path = tmp_path / "rnn.yaml"
    path.write_text("name: rnn\ninputs: {x: [5, 4]}\nnodes:\n  - LSTM: {hidden_size: 8}\n  - item: 0\n")
    assert main(["compile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "input_size=4 (inferred); batch_first=True (netspec default)" in out
    assert "((B, 5, 8), ((1, B, 8), (1, B, 8)))" in out
