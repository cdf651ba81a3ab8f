"""netspec.data.transforms: names and arguments from a spec; masks follow their images."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from netspec.data import TRANSFORMS, SampleLoader
from netspec.data.transforms import apply, build_one, compose, transform_name
from netspec.errors import SpecError

from .helpers import build, load_error, spec

# --------------------------------------------------------------------------------------------
# Registry-wide: every transform builds and runs on a small image (and mask)
# --------------------------------------------------------------------------------------------

#: Spec items for the transforms that need arguments: the transform, or a list of transforms
#: ending with it (what it needs to run first). A transform that is not here must build without
#: arguments, so a new one that cannot fails the test below instead of being skipped.
EXAMPLES: dict[str, Any] = {
    "CenterCrop": {"CenterCrop": 8},
    "Compose": {"Compose": ["RandomHorizontalFlip", "ToTensor"]},
    "GaussianBlur": {"GaussianBlur": 3},
    "JPEG": {"JPEG": 50},
    "Normalize": ["ToTensor", {"Normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}],  # floats only
    "Pad": {"Pad": 2},
    "RandomAdjustSharpness": {"RandomAdjustSharpness": 2.0},
    "RandomAffine": {"RandomAffine": 15},
    "RandomApply": {"RandomApply": {"transforms": ["RandomVerticalFlip"], "p": 0.5}},
    "RandomChoice": {"RandomChoice": ["RandomHorizontalFlip", "RandomVerticalFlip"]},
    "RandomCrop": {"RandomCrop": 8},
    "RandomOrder": {"RandomOrder": ["RandomHorizontalFlip", "RandomVerticalFlip"]},
    "RandomPosterize": {"RandomPosterize": 4},
    "RandomResize": {"RandomResize": {"min_size": 12, "max_size": 20}},
    "RandomResizedCrop": {"RandomResizedCrop": 8},
    "RandomRotation": {"RandomRotation": 30},
    "RandomShortestSize": {"RandomShortestSize": 12},
    "RandomSolarize": {"RandomSolarize": 128},
    "Resize": {"Resize": 8},
    "ScaleJitter": {"ScaleJitter": [16, 16]},
    "ToDtype": {"ToDtype": {"dtype": "float32", "scale": True}},
    "WeightsTransforms": {"WeightsTransforms": "ResNet18_Weights.IMAGENET1K_V1"},  # tests/data/test_preprocessing.py
}

#: Whole-image augmentation policies (classification): torchvision refuses masks with them.
IMAGE_ONLY = {"AugMix", "AutoAugment", "RandAugment", "TrivialAugmentWide", "WeightsTransforms"}


def test_examples_are_registered_transforms():
    assert not EXAMPLES.keys() - set(TRANSFORMS) and not IMAGE_ONLY - set(TRANSFORMS)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_builds_and_runs(name):
    items = EXAMPLES.get(name, name)
    items = items if isinstance(items, list) else [items]
    assert transform_name(items[-1]) == name
    fitted = {0: (torch.full((32,), 100.0), torch.full((32,), 50.0))} if name == "Standardize" else None  # field 0
    transform = compose(items, fitted)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)  # (C, H, W)
    mask = torch.randint(0, 3, (32, 32), generator=g)  # (H, W) class indices
    with torch.random.fork_rng(devices=[]):  # random transforms draw from the global RNG
        torch.manual_seed(0)
        if name in IMAGE_ONLY:
            (out,) = apply(transform, (image,), ("image",))
        else:
            out, out_mask = apply(transform, (image, mask), ("image", "mask"))
            assert out_mask.shape == out.shape[1:], "the mask must move (and be resized) with the image"
            assert set(out_mask.unique().tolist()) <= {0, 1, 2}, "mask values are class indices"
    assert type(out) is torch.Tensor and out.dim() == 3  # (C', H', W'), a plain tensor


@pytest.mark.parametrize("name", sorted(TRANSFORMS.refused))
def test_refused_transforms_say_why(name):
    assert name not in TRANSFORMS
    with pytest.raises(SpecError, match=f"transform `{name}` cannot be used in a spec: "):
        build_one(name)


# --------------------------------------------------------------------------------------------
# Names, arguments, masks
# --------------------------------------------------------------------------------------------


def test_transform_validation():
    err = load_error({"train": {"source": "random"}, "transforms": ["RandomHorizontalFlp"]})
    assert "did you mean `RandomHorizontalFlip`" in str(err)
    err = load_error({"train": {"source": "random"}, "transforms": [{"Resize": {"sise": 3}}]})
    assert "unknown argument `sise`; did you mean `size`" in str(err)
    err = load_error({"train": {"source": "random"}, "eval_transforms": [{"ToDtype": {"dtype": "flaot32"}}]})
    assert "unknown dtype `flaot32`" in str(err)
    assert "Lambda" in str(load_error({"train": {"source": "random"}, "transforms": [{"Lambda": {"lambd": "x"}}]}))
    s = spec(
        train={"source": "random"},
        transforms=[
            {"RandomApply": {"transforms": ["RandomVerticalFlip"], "p": 0.5}},
            {"Resize": {"size": 8, "interpolation": "nearest"}},
        ],
    )
    assert len(s.transforms) == 2


def test_segmentation_masks_follow_geometric_transforms():
    common = {"train": {"source": "shapes", "n": 4, "size": 32}, "batch_size": 4, "loader": {"shuffle": False}}
    flipped = build({**common, "transforms": [{"RandomHorizontalFlip": {"p": 1.0}}]})
    plain = build({**common, "transforms": []})
    (a, ma), (b, mb) = next(iter(flipped.train)), next(iter(plain.train))
    assert isinstance(flipped.train, SampleLoader)
    assert torch.equal(ma, mb.flip(-1)) and torch.equal(a["image"], b["image"].flip(-1))
    small = build({**common, "transforms": [{"Resize": 16}]})
    _, mask = next(iter(small.train))
    assert mask.shape == (4, 16, 16) and mask.dtype == torch.int64 and set(mask.unique().tolist()) <= {0, 1, 2}
