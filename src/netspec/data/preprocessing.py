"""Preprocessing that travels with weights: the evaluation transforms a model's pretrained
weights were made with, read from the library that publishes them, so a spec never copies
ImageNet's mean and std by hand.

- torchvision: a weights enum (``ResNet18_Weights.IMAGENET1K_V1``) carries ``transforms()``:
  resize, center crop, scaling to [0, 1] and normalisation, with the interpolation used.
- timm: a model's pretrained config (``timm.resnet34``, or a tag: ``timm.resnet34.a1_in1k``)
  gives input size, crop percentage, mean, std and interpolation
  (``timm.data.resolve_data_config``), made into transforms by ``timm.data.create_transform``.

Neither reads or downloads a weights file. :class:`WeightsTransforms` is the transform a spec
names (``{WeightsTransforms: ResNet18_Weights.IMAGENET1K_V1}``); it runs the library's own
transform object, so its output equals the library's on the same image tensor.
:func:`weights_preprocessing` finds the weights a spec's model loads, whose transforms are the
default when the data section gives none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import SpecError, did_you_mean

__all__ = ["WeightsTransforms", "Preprocessing", "resolve", "weights_preprocessing", "default_items", "default_note"]

NAME = "WeightsTransforms"  # the transform's name in a spec


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation transforms of one set of weights: the library's callable, whether it wants
    floats in [0, 1] first (timm's transforms convert only PIL images), and what it does in words."""

    name: str  # ResNet18_Weights.IMAGENET1K_V1, timm.resnet34
    steps: Callable[[torch.Tensor], torch.Tensor]
    scale_first: bool
    text: str


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def _torchvision(name: str) -> Preprocessing:
    import torchvision.models as tvm
    from torchvision.transforms._presets import ImageClassification

    try:
        member = tvm.get_weight(name)
    except Exception:  # ValueError, KeyError, AttributeError across versions: an unknown name
        cls_name = name.partition(".")[0]
        known = [
            f"{e.__name__}.{m}" for e in {tvm.get_model_weights(n) for n in tvm.list_models()} for m in e.__members__
        ]
        hint = did_you_mean(name, known) or did_you_mean(cls_name, sorted({k.partition(".")[0] for k in known}))
        raise SpecError(f"unknown weights `{name}`", hint=hint or "name a torchvision weights enum member") from None
    steps = member.transforms()
    if not isinstance(steps, ImageClassification):
        raise SpecError(f"`{name}` are not image classification weights; their transforms are {type(steps).__name__}")
    text = (
        f"Resize({steps.resize_size[0]}, {steps.interpolation.value}, antialias={steps.antialias}), "
        f"CenterCrop({steps.crop_size[0]}), to float in [0, 1], Normalize(mean={_fmt(steps.mean)}, std={_fmt(steps.std)})"
    )
    return Preprocessing(f"{type(member).__name__}.{member.name}", steps, False, text)


def _timm(name: str) -> Preprocessing:
    try:
        import timm
        from timm.data import create_transform, resolve_data_config
    except ImportError:
        raise SpecError(f"`{name}` names timm weights and timm is not installed; pip install 'netspec[timm]'") from None
    model = name.removeprefix("timm.")
    cfg = timm.models.get_pretrained_cfg(model)
    if cfg is None:
        hint = did_you_mean(model, timm.list_pretrained()) or did_you_mean(model, timm.list_models())
        raise SpecError(f"timm has no pretrained config for `{model}`", hint=hint)
    config = resolve_data_config(pretrained_cfg=cfg.to_dict())
    steps = create_transform(**config, is_training=False)
    text = (
        f"timm {cfg.architecture}.{cfg.tag}: input {tuple(config['input_size'])}, crop_pct {config['crop_pct']}, "
        f"{config['interpolation']}, Normalize(mean={_fmt(config['mean'])}, std={_fmt(config['std'])})"
    )
    return Preprocessing(name, steps, True, text)


def resolve(name: str) -> Preprocessing:
    """The preprocessing of a torchvision weights enum member or a timm model (``timm.`` prefix).

    >>> resolve("ResNet18_Weights.DEFAULT").text
    'Resize(256, bilinear, antialias=True), CenterCrop(224), to float in [0, 1], Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])'
    """
    return _timm(name) if name.startswith("timm.") else _torchvision(name)


class WeightsTransforms(v2.Transform):
    """The evaluation transforms of pretrained weights (a torchvision weights enum member such as
    ``ResNet18_Weights.IMAGENET1K_V1``, or ``timm.<model>[.<tag>]``): uint8 images in, normalised
    float images out, computed by the library's own transform object.

    >>> t = WeightsTransforms("ResNet18_Weights.IMAGENET1K_V1")
    >>> t(tv_tensors.Image(torch.zeros(3, 300, 400, dtype=torch.uint8))).shape
    torch.Size([3, 224, 224])
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def __init__(self, weights: str) -> None:
        super().__init__()
        self.preprocessing = resolve(weights)

    def extra_repr(self) -> str:
        return f"weights={self.preprocessing.name!r}"

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            raise TypeError(f"{NAME} is for classification images; a mask would not be resized with its image")
        x = inpt.as_subclass(torch.Tensor)  # (..., C, H, W)
        if self.preprocessing.scale_first and x.dtype == torch.uint8:
            x = x.float().div(255)  # as ToTensor: timm's transforms turn only PIL images into floats
        out = self.preprocessing.steps(x)  # (..., C, crop, crop)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _weights_of(op: str, args: Any, params: dict[str, Any]) -> str | None:
    """The preprocessing name of one model node's weights, or None (no weights, or a file whose
    origin is unknown: a torchvision state_dict file says nothing of its enum)."""
    from ..nodes.kinds import TIMM_PREFIX
    from ..nodes.zoo import ZOO, is_weights_file, weights_enum

    if not isinstance(args, dict):
        return None
    weights = args.get("weights")
    if isinstance(weights, str) and weights.startswith("$"):
        weights = params.get(weights[1:])
    if not isinstance(weights, str):
        return None
    if op.startswith(TIMM_PREFIX):  # a local file loaded as timm loads pretrained weights
        return op if args.get("in_chans", 3) == 3 else None  # timm's mean and std are for 3 channels
    if op in ZOO and not is_weights_file(weights):
        try:
            member = weights_enum(op, weights)
        except SpecError:  # the compiler reports it, at the node
            return None
        return f"{type(member).__name__}.{member.name}"
    return None


def _nodes(nodes: list[Any]) -> list[Any]:
    return [n for node in nodes for n in (node, *_nodes(node.nodes or []))]


def weights_preprocessing(spec: Any) -> tuple[str, str] | None:
    """(node, weights) of the model node whose weights carry preprocessing: a torchvision node
    naming a weights enum member, or a timm node with a weights file (its pretrained config).
    None when no node has such weights, or when two disagree.

    >>> from netspec.compiler.spec import load_spec
    >>> weights_preprocessing(load_spec({"name": "m", "inputs": {"x": [3, 8, 8]}, "nodes": [{"ReLU": {}}]})) is None
    True
    """
    found = {
        (node.name or node.op, name)
        for node in _nodes([*spec.nodes, *(n for b in spec.blocks.values() for n in b.nodes)])
        if (name := _weights_of(node.op, node.args, dict(spec.params))) is not None
    }
    return found.pop() if len({name for _, name in found}) == 1 else None


def default_items(spec: Any) -> list[Any] | None:
    """The transform list the model's weights give when the data section names none (neither
    ``transforms`` nor ``eval_transforms``), else None.

    >>> from netspec.compiler.spec import load_spec
    >>> default_items(load_spec({"name": "m", "inputs": {"x": [3, 8, 8]}, "nodes": [{"ReLU": {}}]})) is None
    True
    """
    data = getattr(spec, "data", None)
    if data is not None and (data.transforms is not None or data.eval_transforms is not None):
        return None
    found = weights_preprocessing(spec)
    return None if found is None else [{NAME: found[1]}]


def default_note(spec: Any) -> str | None:
    """The log line saying that the data's transforms come from the model's weights, or None.

    >>> from netspec.compiler.spec import load_spec
    >>> default_note(load_spec({"name": "m", "inputs": {"x": [3, 224, 224]},
    ...                         "nodes": [{"net": {"resnet18": {"weights": "DEFAULT"}}}]}))
    "data: no transforms given; using node `net`'s weights' (ResNet18_Weights.IMAGENET1K_V1): Resize(256, bilinear, antialias=True), CenterCrop(224), to float in [0, 1], Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])"
    """
    found = weights_preprocessing(spec)
    if default_items(spec) is None or found is None:
        return None
    node, name = found
    return f"data: no transforms given; using node `{node}`'s weights' ({name}): {resolve(name).text}"
