"""Preprocessing that travels with weights: ``WeightsTransforms`` equals torchvision's
``weights.transforms()`` and timm's ``create_transform(**resolve_data_config(...))`` on the same
image; a model node with such weights gives the default transforms of a data section that
names none; a transform the spec names wins; ``--print-config`` shows them. No weights file is
ever fetched: torch's cache is a temporary folder holding random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import netspec
from netspec.cli import main
from netspec.data import build_loaders
from netspec.data.preprocessing import default_items, weights_preprocessing
from netspec.data.transforms import apply, compose
from netspec.errors import SpecError
from netspec.interop.predict import eval_transform_items

from datafiles import write_image_folder

RESNET18 = "ResNet18_Weights.IMAGENET1K_V1"


def _image(seed: int = 0, size: tuple[int, int] = (300, 400)) -> torch.Tensor:
    return torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _ours(items: list, image: torch.Tensor) -> torch.Tensor:
    transform = compose(items)
    assert transform is not None
    return apply(transform, (image,), ("image",))[0]


@pytest.mark.parametrize(
    "name", [RESNET18, "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1", "EfficientNet_B0_Weights.DEFAULT"]
)
def test_equal_to_torchvisions_weights_transforms(name: str) -> None:
    weights = torchvision.models.get_weight(name)
    for image in (_image(0), _image(1, (240, 200))):
        want = weights.transforms()(image)
        got = _ours([{"WeightsTransforms": name}], image)
        assert type(got) is torch.Tensor and torch.equal(got, want)
    batch = torch.stack([_image(0), _image(2)])  # the in-memory path: a whole (N, C, H, W) tensor at once
    assert torch.equal(_ours([{"WeightsTransforms": name}], batch)[1], weights.transforms()(_image(2)))


def test_equal_to_timms_create_transform() -> None:
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    image = _image(3)
    config = resolve_data_config({}, model=timm.create_model("resnet34"))
    want = create_transform(**config)(image.float() / 255)  # timm's transforms scale only PIL images: ToTensor's
    got = _ours([{"WeightsTransforms": "timm.resnet34"}], image)
    assert got.shape == (3, *config["input_size"][1:]) and torch.equal(got, want)


def test_unknown_weights_are_one_line_with_a_did_you_mean() -> None:
    with pytest.raises(SpecError) as err:
        compose([{"WeightsTransforms": "ResNet18_Weights.IMAGENET1K_V2"}])
    assert (
        str(err.value)
        == "<spec>: unknown weights `ResNet18_Weights.IMAGENET1K_V2`; did you mean `ResNet18_Weights.IMAGENET1K_V1`?"
    )


def _spec(tmp_path: Path, data: dict | None, weights: str = "IMAGENET1K_V1") -> netspec.Spec:
    spec = {
        "name": "m",
        "inputs": {"image": [3, 224, 224]},
        "nodes": [{"net": {"resnet18": {"weights": weights, "replace": {"fc": {"Linear": {"out_features": 2}}}}}}],
    }
    if data is not None:
        spec["data"] = data
    return netspec.load_spec(spec, data_roots=[tmp_path])


@pytest.fixture
def torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch's hub cache in tmp_path, holding random resnet18 weights under the name torchvision
    gives IMAGENET1K_V1's file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    return tmp_path


def test_a_weights_enum_node_loads_torchs_cached_file(torch_cache: Path) -> None:
    c = netspec.compile_spec(_spec(torch_cache, None, "ResNet18_Weights.IMAGENET1K_V1"))
    ref = torch.load(torch_cache / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    own = c.module.net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in ref.items() if not k.startswith("fc."))


def test_a_weights_enum_missing_from_the_cache_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(SpecError) as err:
        netspec.compile_spec(_spec(tmp_path, None))
    message = str(err.value)
    assert (
        "\n" not in message and "nodes[0].resnet18.weights (net): ResNet18_Weights.IMAGENET1K_V1 is not in" in message
    )
    assert "netspec never downloads; fetch it once with: python -c" in message


def test_the_weights_give_the_default_train_eval_and_predict_transforms(torch_cache: Path) -> None:
    root = write_image_folder(torch_cache / "images", size=(300, 260))
    data = {"train": {"source": "ImageFolder", "root": str(root)}, "val": {"source": "ImageFolder", "root": str(root)}}
    spec = _spec(torch_cache, data)
    assert weights_preprocessing(spec) == ("net", RESNET18)
    assert default_items(spec) == [{"WeightsTransforms": RESNET18}]
    assert eval_transform_items(spec.data, default_items(spec)) == [{"WeightsTransforms": RESNET18}]
    loaders = build_loaders(
        spec.data, base_dir=torch_cache, input_names=["image"], seed=0, roots=(torch_cache,),
        default_transforms=default_items(spec),
    )  # fmt: skip
    images, _ = next(iter(loaders.val))
    from PIL import Image

    first = sorted((root / "cat").iterdir())[0]
    decoded = torch.from_numpy(__import__("numpy").asarray(Image.open(first).convert("RGB"))).permute(2, 0, 1)
    want = torchvision.models.get_weight(RESNET18).transforms()(decoded.contiguous())
    assert torch.equal(images["image"][0], want)
    assert loaders.info["train"]["transforms"] == [{"WeightsTransforms": RESNET18}]


def test_a_transform_the_spec_names_wins(torch_cache: Path) -> None:
    given = [{"Resize": 224}, "ToTensor"]
    for data in (
        {"train": {"source": "random"}, "transforms": given},
        {"train": {"source": "random"}, "eval_transforms": given},
    ):
        spec = _spec(torch_cache, data)
        assert default_items(spec) is None
        assert eval_transform_items(spec.data, default_items(spec)) == given
    assert default_items(_spec(torch_cache, None, "r18.pth")) is None  # a file says nothing of its preprocessing


def test_print_config_shows_them_as_coming_from_the_weights(
    torch_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = torch_cache / "m.yaml"
    path.write_text(
        "name: m\ninputs: {image: [3, 224, 224]}\nnodes:\n  - net: {resnet18: {weights: IMAGENET1K_V1}}\n"
        "data: {train: {source: random, shapes: {image: [3, 224, 224]}}}\n"
    )
    assert main(["validate", str(path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert (
        "# transforms from the weights of node `net` (no data.transforms or data.eval_transforms given);\n"
        "# used for training, evaluation and predict:\n"
        f"#   - {{WeightsTransforms: {RESNET18}}}   # Resize(256, bilinear, antialias=True), CenterCrop(224), "
        "to float in [0, 1], Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])\n"
    ) in out
    assert netspec.load_spec(text=out) == netspec.load_spec(path)  # the comment leaves the spec as it was


def test_timm_weights_give_defaults_only_for_three_channels(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    for chans, want in ((3, [{"WeightsTransforms": "timm.resnet34"}]), (1, None)):
        spec = netspec.load_spec(
            {"name": "m", "inputs": {"image": [chans, 224, 224]},
             "nodes": [{"net": {"timm.resnet34": {"in_chans": chans, "weights": "r34.safetensors"}}}]}
        )  # fmt: skip
        assert default_items(spec) == want


def test_a_run_says_its_transforms_came_from_the_weights(torch_cache: Path) -> None:
    """`netspec run` on images with no transforms named: resnet18's weights' transforms, logged."""
    import io

    root = write_image_folder(torch_cache / "images", size=(240, 230), per_class=2)
    spec = {
        "name": "m",
        "inputs": {"image": [3, 224, 224]},
        "nodes": [{"net": {"resnet18": {"weights": "IMAGENET1K_V1", "replace": {"fc": {"Linear": {"out_features": 2}}}}, "freeze": True}}],
        "data": {"train": {"source": "ImageFolder", "root": str(root)}, "batch_size": 4},
        "loss": "CrossEntropyLoss",
        "optimizer": {"SGD": {"lr": 0.01}},
        "train": {"epochs": 1, "device": "cpu", "progress": "line"},
    }  # fmt: skip
    stream = io.StringIO()
    netspec.train(netspec.load_spec(spec, data_roots=[torch_cache]), out=torch_cache / "run", stream=stream)
    assert (
        "data: no transforms given; using node `net`'s weights' (ResNet18_Weights.IMAGENET1K_V1): "
        "Resize(256, bilinear, antialias=True), CenterCrop(224)"
    ) in stream.getvalue()
