"""timm models as nodes (``timm.resnet34``), tested against timm itself: the same weights give the
same outputs, a pretrained file is adapted exactly as timm's own loader adapts it, and the shapes
inferred on the meta device are those of a real forward. Without timm a spec that names one gets
one line with the install command, and specs that do not name one never import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netspec
from netspec.errors import SpecError

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'netspec[timm]')")

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# One small model of each family timm builds differently (stems, heads, pooling, attention).
FAMILIES = [
    ("resnet18", 64, {}),
    ("efficientnet_b0", 64, {}),
    ("mobilenetv3_small_100", 64, {}),
    ("convnext_atto", 64, {}),
    ("regnetx_002", 64, {}),
    ("vit_tiny_patch16_224", 64, {"img_size": 64}),
]


def _spec(model: str, args: dict, shape: tuple[int, ...] = (1, 32, 32), **node: object) -> dict:
    return {"name": "m", "inputs": {"image": list(shape)}, "nodes": [{"net": {f"timm.{model}": args}, **node}]}


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    a.eval(), b.eval()
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_same_weights_give_timms_outputs(tmp_path: Path) -> None:
    """Seed 003: timm.create_model('resnet34', num_classes=10, in_chans=1)."""
    torch.manual_seed(0)
    ref = timm.create_model("resnet34", num_classes=10, in_chans=1)
    torch.save(ref.state_dict(), tmp_path / "r34.pth")
    spec = _spec("resnet34", {"num_classes": 10, "in_chans": 1, "weights": str(tmp_path / "r34.pth")})
    c = netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path]))  # the file lies outside the cwd
    assert c.graph.nodes[0].shape == "(B, 10)"
    assert sum(p.numel() for p in c.module.parameters()) == sum(p.numel() for p in ref.parameters()) == 21_283_530
    assert list(c.module.net.state_dict()) == list(ref.state_dict())
    assert _same(c.module, ref, torch.randn(2, 1, 32, 32)) == 0.0


def test_a_pretrained_file_is_adapted_as_timm_adapts_it(tmp_path: Path) -> None:
    """A 3-channel, 1000-class file into in_chans=1, num_classes=10: timm's pretrained loader
    (pointed at the same local file) sums the first conv over channels and drops the head."""
    torch.manual_seed(1)
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "imagenet.pth")
    ref = timm.create_model(
        "resnet18",
        pretrained=True,
        num_classes=10,
        in_chans=1,
        pretrained_cfg_overlay={"file": str(tmp_path / "imagenet.pth")},
    )
    spec = _spec("resnet18", {"num_classes": 10, "in_chans": 1, "weights": str(tmp_path / "imagenet.pth")})
    c = netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path]))
    assert any("conv1.weight adapted from 3 to 1 input channels" in line for line in c.log), c.log
    assert any("fc left as initialised: the file's has 1000 outputs, the node's 10" in line for line in c.log), c.log
    assert not any("missing" in line for line in c.log), c.log  # the head is reported once, as above
    c.module.net.fc.load_state_dict(ref.fc.state_dict())  # both heads are fresh: make them equal
    assert _same(c.module, ref, torch.randn(2, 1, 32, 32)) == 0.0


def test_head_replacement_and_freezing_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec("resnet18", {"replace": {"fc": {"Linear": {"out_features": 3}}}}, (3, 32, 32), freeze=True)
    c = netspec.compile_spec(spec)
    trainable = sorted(n for n, p in c.module.named_parameters() if p.requires_grad)
    assert trainable == ["net.fc.bias", "net.fc.weight"]
    assert c.graph.nodes[0].notes == ["random init (no weights file)", "replaced fc with Linear"]
    assert any("net: froze" in line for line in c.log), c.log


@pytest.mark.parametrize("model,size,args", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_meta_shapes_are_those_of_a_real_forward(model: str, size: int, args: dict) -> None:
    c = netspec.compile_spec(_spec(model, {"num_classes": 7, **args}, (3, size, size)))
    assert c.graph.nodes[0].shape == "(B, 7)"
    c.module.eval()
    with torch.no_grad():
        assert tuple(c.module(torch.randn(2, 3, size, size)).shape) == (2, 7)


def test_features_only_gives_the_feature_maps() -> None:
    c = netspec.compile_spec(
        {
            "name": "m",
            "inputs": {"image": [3, 64, 64]},
            "nodes": [
                {"net": {"timm.resnet18": {"features_only": True, "out_indices": [2, 3]}}},
                {"item": {"index": 1}},
            ],
        }
    )
    assert c.graph.nodes[0].shape == "((B, 128, 8, 8), (B, 256, 4, 4))"
    assert tuple(c.module(torch.randn(2, 3, 64, 64)).shape) == (2, 256, 4, 4)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            {"pretrained": True},
            "`pretrained` would fetch weights; netspec never downloads weights: save them once with "
            "torch.save(timm.create_model('resnet18', pretrained=True).state_dict(), 'resnet18.pth')",
        ),
        ({"pretrained_cfg_overlay": {"file": "x.pth"}}, "`pretrained_cfg_overlay` would fetch weights"),
        ({"num_clases": 3}, "timm `timm.resnet18` has no argument `num_clases`; did you mean `num_classes`?"),
        ({"weights": "https://example.com/r.pth"}, "weights are never downloaded"),
    ],
)
def test_mistakes_are_one_line(args: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        netspec.compile_spec(_spec("resnet18", args, (3, 32, 32)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pretrained_false_is_the_default() -> None:
    assert (
        netspec.compile_spec(_spec("resnet18", {"pretrained": False, "num_classes": 2}, (3, 32, 32)))
        .graph.nodes[0]
        .shape
        == "(B, 2)"
    )


def test_misspelt_model_gets_a_suggestion() -> None:
    with pytest.raises(SpecError, match=r"unknown timm model `timm.resnet43`; did you mean `timm.resnet34`\?"):
        netspec.load_spec({"name": "m", "inputs": {"x": [3, 8, 8]}, "nodes": [{"timm.resnet43": {}}]})


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )


def test_without_timm_one_line_and_no_import_for_other_specs(tmp_path: Path) -> None:
    """In a process where timm cannot be imported: specs without timm models validate (and never
    import it), the schema is made without it, and a spec that names one gets one line with the
    install command."""
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\ninputs: {image: [1, 32, 32]}\nnodes:\n  - net: {timm.resnet34: {num_classes: 10}}\n")
    code = (
        "import sys\nfrom netspec.cli import main\n"
        f"assert main(['validate', {str(ROOT / 'specs' / 'resnet18_finetune.yaml')!r}]) == 0\n"
        "from netspec.compiler.schema import schema_text; schema_text()\n"
        "assert 'timm' not in sys.modules, 'timm was imported'\n"
        "sys.modules['timm'] = None  # as if not installed\n"
        f"sys.exit(main(['compile', {str(spec)!r}]))"
    )
    done = _run(code)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"{spec}:4:11: nodes[0].net.timm.resnet34: `timm.resnet34` is a timm model and timm is not installed; "
        "install it with pip install 'netspec[timm]'"
    ]


def _first_models() -> list[str]:
    return [names[0] for m in timm.list_modules() if (names := timm.list_models(module=m))]


@pytest.mark.slow
@pytest.mark.parametrize("name", _first_models())
def test_one_model_of_every_timm_module_is_a_node(name: str) -> None:
    """The first model of each of timm's ~100 model modules (architectures), at its own input size
    (about 20 minutes in all on 2 CPU cores; all passed with timm 1.0.31)."""
    cfg = timm.models.get_pretrained_cfg(name)
    size = list(cfg.input_size) if cfg is not None and cfg.input_size else [3, 224, 224]
    c = netspec.compile_spec(_spec(name, {"num_classes": 7}, tuple(size)), max_params=10**10)
    assert c.graph.nodes[0].shape == "(B, 7)"


def test_layers_timm_lists_the_models_or_says_how_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from netspec.cli import main
    from netspec.nodes import timm_zoo
    from netspec.nodes.registry import Registry

    assert main(["layers", "timm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"timm models ({len(timm.list_models())}): ") and "timm.resnet34, " in out
    monkeypatch.setattr(timm_zoo, "TIMM", Registry("timm model"))  # what an environment without timm has
    assert main(["layers", "timm"]) == 2
    assert capsys.readouterr().err == "timm is not installed; install it with pip install 'netspec[timm]'\n"


def test_a_safetensors_file_is_adapted_as_the_same_pt_file(tmp_path: Path) -> None:
    """timm publishes safetensors: the same weights as .pth and .safetensors give the same node,
    adapted (1 input channel, 10 classes) the same way."""
    from safetensors.torch import save_file

    torch.manual_seed(2)
    state = timm.create_model("resnet18").state_dict()
    torch.save(state, tmp_path / "imagenet.pth")
    save_file(state, str(tmp_path / "imagenet.safetensors"))
    built = {}
    for name in ("imagenet.pth", "imagenet.safetensors"):
        spec = _spec("resnet18", {"num_classes": 10, "in_chans": 1, "weights": str(tmp_path / name)})
        torch.manual_seed(3)  # the fresh head is initialised alike
        c = netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path]))
        assert any("conv1.weight adapted from 3 to 1 input channels" in line for line in c.log), c.log
        built[name] = c.module.state_dict()
    pt, st = built.values()
    assert list(pt) == list(st) and all(torch.equal(pt[k], st[k]) for k in pt)
