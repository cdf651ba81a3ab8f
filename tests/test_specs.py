"""Every spec in ``specs/``: it compiles, has the expected parameter count, validates against the
committed JSON Schema; plus the CLI's summary and code views of a few of them.

The list of specs is a glob, so a new file in ``specs/`` is tested automatically -- and fails
until its parameter count is written into ``EXPECTED_PARAMS`` below. Counts of the seed models
are the figures of ``/work/shared/notes/reference-figures.md`` (the hand-written modules in
``tests/reference_models.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import netspec
from netspec import cli
from netspec.api import compile_spec

from speclist import spec_params

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs").glob("*.json"))
SCHEMA_FILE = ROOT / "schemas" / "netspec.schema.json"
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/netspec.schema.json"

EXPECTED_PARAMS: dict[str, int] = {
    # seed models (reference-figures.md)
    "unet": 31_037_698,  # 003 U-Net, n_channels=3, n_classes=2, bilinear=False
    "alexnet_fashion": 46_764_746,  # 003 AlexNet, 1 channel, Linear(256*5*5, 4096)
    "lenet": 61_706,  # 003 LeNet
    "fashion_cnn": 582_026,  # 003 "PyTorch实战" Net, bugs fixed
    "mnist_cnn": 3_274_634,  # 001 NN_Module, 1 channel
    "resnet50_extra_input": 25_567_052,  # 003 添加外部输入
    "resnet50_extra_output": 25_567_042,  # 003 添加额外输出
    "two_input_net": 293_654,  # 004 MyConvNet as in reference_models.TwoInputNet
    "resnet18_finetune": 11_181_642,  # resnet18 (11,689,512) with fc 512->1000 replaced by 512->10
    "logistic_regression": 3,  # 000 LR: Linear(2, 1)
    "regression": 61,  # 003 Net(1, 20, 1)
    # examples without a seed module (computed by hand)
    "mlp": 784 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 10 + 10,  # 335,114
    "small_resnet": 175_258,
    # models nobody here wrote (issue 9), checked against tests/reference_models.py
    "vae": 652_824,  # pytorch/examples VAE: 784-400-(20, 20)-400-784
    "transformer_classifier": 133_252,  # pos 2,048 + embedding 64,000 + 2 layers x 33,472 + fc 260
    "list_dense": 52,  # seed 003 MyListDense: 3 x 16 + 4
    "resnet18": 11_689_512,  # torchvision resnet18, the same state_dict keys
    # issue 20's constructs (tests/test_equivalence_language.py)
    "word_language_model": 131_944,  # embedding 64,000 + 2 layers x 33,472 + decoder bias 1,000 (weight tied)
    "googlenet_aux": 182_318,  # conv1 896 + inceptions 11,824 + 21,568 + 28,736 + 47,200 + 2 aux x 35,562 + fc 970
    "siamese": 46_210,  # tower 416 + 12,832 + 32,832 (called twice, counted once) + head 130
    # timm models (tests/nodes/test_timm_zoo.py compares them with timm.create_model)
    "timm_resnet34": 21_283_530,  # 003 timm.create_model('resnet34', num_classes=10, in_chans=1)
    "timm_resnet34_fashion": 21_283_530,  # the same network, `extends: timm_resnet34.yaml`
}

# Other parameter settings of the seed models (reference-figures.md / reference_models.py).
PARAM_VARIANTS = [
    ("unet", {"bilinear": True}, 17_263_042),
    ("unet", {"n_channels": 1, "n_classes": 1}, 31_036_481),
    ("regression", {"n_hidden": 10}, 31),  # seed 002's Net(1, 10, 1)
    ("two_input_net", {"dcgr_features": 1}, 286_486),
]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def compiled() -> dict[str, netspec.api.Compiled]:
    """Each spec compiled once for the whole file (the ResNets take a second each)."""
    return {}


def _compile(cache: dict, path: Path):
    if path.stem not in cache:
        cache[path.stem] = compile_spec(path)
    return cache[path.stem]


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_spec_compiles_with_expected_parameter_count(path: Path, compiled) -> None:
    assert path.stem in EXPECTED_PARAMS, (
        f"{path.name} is new: add its parameter count to EXPECTED_PARAMS in {Path(__file__).name}"
    )
    c = _compile(compiled, path)
    assert c.spec.name == path.stem, "a spec's `name` is its file name"
    assert _count(c.module) == EXPECTED_PARAMS[path.stem]
    assert c.graph.total_params() == EXPECTED_PARAMS[path.stem], "the meta pass and the real module agree"


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_meta_build_is_the_real_module_without_values(path: Path, compiled) -> None:
    """`compile_spec(device="meta")` (what `validate` and `compile` use): the same parameters,
    buffers, frozen flags, code and build log as the real module, none of them in memory."""
    real = _compile(compiled, path)
    meta = compile_spec(path, device="meta")
    layout = [(n, tuple(p.shape), p.requires_grad) for n, p in real.module.named_parameters()]
    assert [(n, tuple(p.shape), p.requires_grad) for n, p in meta.module.named_parameters()] == layout
    assert [(n, tuple(b.shape)) for n, b in meta.module.named_buffers()] == [
        (n, tuple(b.shape)) for n, b in real.module.named_buffers()
    ]
    assert all(t.is_meta for t in (*meta.module.parameters(), *meta.module.buffers()))
    assert meta.module.code == real.module.code and meta.log == real.log
    assert torch.get_default_device().type == "cpu"  # the meta build left the default device alone


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_spec_header_and_description(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".yaml":
        assert text.splitlines()[0] == SCHEMA_LINE, "first line: the schema comment for editors"
    data = yaml.safe_load(text)
    assert data["netspec"] == 1
    assert data.get("description", "").strip(), "every example spec says what it is"


def test_expected_table_has_no_stale_entries() -> None:
    assert sorted(EXPECTED_PARAMS) == sorted(p.stem for p in SPECS)


@pytest.mark.parametrize(
    "name,params,expected",
    PARAM_VARIANTS,
    ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for n, p, _ in PARAM_VARIANTS],
)
def test_parameter_variants(name: str, params: dict, expected: int) -> None:
    assert _count(netspec.build_model(ROOT / "specs" / f"{name}.yaml", **params)) == expected


def test_resnet18_finetune_freezes_all_but_the_new_head(compiled) -> None:
    c = _compile(compiled, ROOT / "specs" / "resnet18_finetune.yaml")
    params = dict(c.module.named_parameters())
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    assert sum(p.numel() for p in params.values()) == 11_181_642
    assert sum(p.numel() for p in trainable.values()) == 5_130
    assert sorted(trainable) == ["net.fc.bias", "net.fc.weight"]
    assert any("froze 60 parameter tensors" in line for line in c.log), c.log


def test_resnet18_finetune_cli_report(capsys) -> None:
    assert cli.main(["compile", str(ROOT / "specs" / "resnet18_finetune.yaml")]) == 0
    out = capsys.readouterr().out
    assert "parameters: 11,181,642 total, 5,130 trainable, 11,176,512 frozen" in out


# ---- CLI views ---------------------------------------------------------------------------


def test_unet_summary_at_full_size(capsys) -> None:
    """The README's example at the declared 3x572x572: from the inferred shapes, no forward pass."""
    assert cli.main(["compile", str(ROOT / "specs" / "unet.yaml"), "--summary"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "unet: 1 input (image 3x572x572) -> 1 output (logits 2x572x572)"
    assert "Total params: 31,037,698" in out
    assert "[1, 2, 572, 572]" in out


@pytest.mark.parametrize(
    "name,size,header,total",
    ids=["unet", "resnet50_extra_input", "resnet50_extra_output", "two_input_net"],
    argvalues=[
        ("unet", "3x68x76", "unet: 1 input (image 3x68x76) -> 1 output (logits 2x68x76)", "31,037,698"),
        (
            "resnet50_extra_input",
            "3x64x64",
            "resnet50_extra_input: 2 inputs (image 3x64x64, extra scalar) -> 1 output (probs 10)",
            "25,567,052",
        ),
        (
            "resnet50_extra_output",
            "3x64x64",
            "resnet50_extra_output: 1 input (image 3x64x64) -> 2 outputs (probs 10, features 1000)",
            "25,567,042",
        ),
        (
            "two_input_net",
            "1x10x18",
            "two_input_net: 2 inputs (x 1x10x18, dcgr_feature 8) -> 1 output (out 2)",
            "293,654",
        ),
    ],
)
def test_summary_at_a_small_input_size(capsys, name: str, size: str, header: str, total: str) -> None:
    assert (
        cli.main(["compile", str(ROOT / "specs" / f"{name}.yaml"), "--summary", "--depth", "1", "--input-size", size])
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0] == header
    assert f"Total params: {total}" in out


@pytest.mark.parametrize(
    "name", ["lenet", "alexnet_fashion", "two_input_net", "resnet50_extra_input", "resnet50_extra_output", "unet"]
)
def test_code_has_one_line_per_node(capsys, compiled, name: str) -> None:
    path = ROOT / "specs" / f"{name}.yaml"
    c = _compile(compiled, path)
    assert cli.main(["compile", str(path), "--code"]) == 0
    out = capsys.readouterr().out
    top = out.split(f"# {name}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert top[0].startswith("def forward(self, " + ", ".join(c.graph.inputs))
    body = [line for line in top[1:] if not line.strip().startswith("return")]
    assigned = [re.match(r"^    (\w+) = ", line).group(1) for line in body]  # type: ignore[union-attr]
    assert assigned == [n.name for n in c.graph.nodes]
    for line, node in zip(body, c.graph.nodes):
        assert line.rstrip().endswith("# " + "(" + ", ".join(["B", *map(str, node.value.shape[1:])]) + ")"), line


# ---- JSON Schema -------------------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    """The committed schema equals a fresh one -- made with the same torch: its layer arguments
    come from torch.nn, which another torch version may change."""
    from netspec.compiler.schema import schema_text, torch_version

    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    made_with = re.search(r"with torch (\S+):", committed.get("$comment", ""))
    if made_with is None or made_with.group(1) != torch_version():
        pytest.skip(
            f"the committed schema was generated with torch {made_with.group(1) if made_with else '?'}, "
            f"this is torch {torch_version()}: compared only under the same torch"
        )
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "schemas/netspec.schema.json is out of date with the spec models: "
        "run `netspec schema --write schemas/` and commit the result"
    )


@pytest.fixture(scope="module")
def validator():
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", spec_params(SPECS))
def test_spec_validates_against_the_committed_schema(path: Path, validator) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


def test_schema_catches_typos_an_editor_should_underline(validator) -> None:
    data = yaml.safe_load((ROOT / "specs" / "lenet.yaml").read_text(encoding="utf-8"))
    assert validator.is_valid(data)
    assert not validator.is_valid({**data, "nodez": []})  # unknown top-level key
    bad = [{"Conv2d": {"out_chanels": 6, "kernel_size": 5}}, *data["nodes"][1:]]  # (unnamed form)
    assert not validator.is_valid({**data, "nodes": bad})  # misspelled layer argument
    for named in (
        {"stem": {"Conv2d": {"kernal_size": 3}}},  # named form (issue 9)
        {"squeeze": {"Conv2d": {"kernal_size": 3}}},  # named like an op
        {"down": [{"Conv2d": {"kernal_size": 1}}, "BatchNorm2d"]},
    ):  # a group
        assert not validator.is_valid({**data, "nodes": [named, *data["nodes"][1:]]}), named
    for fine in (
        {"stem": {"Conv2d": {"kernel_size": 3, "out_channels": 6}}},
        {"relu": "ReLU"},
        {"x1": {"DoubleConv": {"out": 64}}},
        {"w": {"Parameter": {"shape": [4, 4]}}},
    ):
        assert validator.is_valid({**data, "nodes": [fine, *data["nodes"][1:]]}), fine
