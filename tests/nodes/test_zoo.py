"""The torchvision model registry: every classification model torchvision lists is a node whose
shapes netspec infers (on the meta device: no weights, no memory), with the builder's defaults."""

from __future__ import annotations

import re

import pytest

import netspec
from netspec.nodes.zoo import ZOO

# Models whose meta-device inference takes over a second here (measured): marked slow, but for the
# smallest of each family (vgg11, vit_b_32, swin_t, convnext_tiny, maxvit_t, inception_v3).
SLOW = {
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "regnet_x_16gf",
    "regnet_x_32gf",
    "regnet_x_8gf",
    "regnet_y_128gf",
    "regnet_y_16gf",
    "regnet_y_1_6gf",
    "regnet_y_32gf",
    "regnet_y_8gf",
    "resnet101",
    "resnet152",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "swin_b",
    "swin_s",
    "swin_v2_b",
    "swin_v2_s",
    "swin_v2_t",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "wide_resnet101_2",
    "wide_resnet50_2",
}
# torchvision's input size where 224 does not fit the model.
SIZES = {"inception_v3": 299}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ZOO])
def test_every_torchvision_model_is_a_node(name: str) -> None:
    size = SIZES.get(name, 224)
    compiled = netspec.compile_spec(
        {"name": "m", "inputs": {"image": [3, size, size]}, "nodes": [{"net": {name: {"num_classes": 7}}}]},
        max_params=10**10,
    )
    assert str(compiled.graph.nodes[0].shape) == "(B, 7)"  # the replaced head, batch first


def test_meta_build_reads_and_checks_the_weights_file(tmp_path) -> None:
    """`validate`/`compile` build on the meta device: the weights file is still read and checked
    against the model (a mismatch is the same one-line error), silently, with nothing copied."""
    import warnings

    import torch
    import torchvision

    from netspec.errors import CheckpointError

    state = torchvision.models.resnet18(num_classes=10).state_dict()
    torch.save(state, tmp_path / "r18.pth")
    spec = {
        "name": "m",
        "inputs": {"image": [3, 32, 32]},
        "nodes": [{"net": {"resnet18": {"num_classes": 10, "weights": str(tmp_path / "r18.pth")}}}],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "copying into a meta parameter is a no-op"
        c = netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path]), device="meta")
    assert any(f"loaded {len(state)} tensors" in line for line in c.log), c.log
    assert all(p.is_meta for p in c.module.parameters())
    spec["nodes"][0]["net"]["resnet18"]["num_classes"] = 5  # the file's head has 10 classes
    with pytest.raises(CheckpointError, match=re.escape("fc.weight` has shape")):
        netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path]), device="meta")


def test_a_safetensors_weights_file_loads_as_the_same_pt_file(tmp_path) -> None:
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = torchvision.models.resnet18(num_classes=10).state_dict()
    torch.save(state, tmp_path / "r18.pth")
    save_file(state, str(tmp_path / "r18.safetensors"))

    def built(name: str) -> torch.nn.Module:
        spec = {
            "name": "m",
            "inputs": {"image": [3, 32, 32]},
            "nodes": [{"net": {"resnet18": {"num_classes": 10, "weights": str(tmp_path / name)}}}],
        }
        return netspec.compile_spec(netspec.load_spec(spec, data_roots=[tmp_path])).module

    pt, st = built("r18.pth").state_dict(), built("r18.safetensors").state_dict()
    assert list(pt) == list(st) and all(torch.equal(pt[k], st[k]) for k in pt)
    assert all(torch.equal(st[f"net.{k}"], v) for k, v in state.items())
