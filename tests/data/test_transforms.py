"""netspec.data.transforms: names and arguments from a spec; masks follow their images."""

from __future__ import annotations

import torch

from netspec.data import SampleLoader
from .helpers import build, load_error, spec


def test_transform_validation():
    err = load_error({"train": {"source": "random"}, "transforms": ["RandomHorizontalFlp"]})
    assert "did you mean `RandomHorizontalFlip`" in str(err)
    err = load_error({"train": {"source": "random"}, "transforms": [{"Resize": {"sise": 3}}]})
    assert "unknown argument `sise`; did you mean `size`" in str(err)
    err = load_error({"train": {"source": "random"}, "eval_transforms": [{"ToDtype": {"dtype": "flaot32"}}]})
    assert "unknown dtype `flaot32`" in str(err)
    assert "Lambda" in str(load_error({"train": {"source": "random"}, "transforms": [{"Lambda": {"lambd": "x"}}]}))
    s = spec(train={"source": "random"}, transforms=[{"RandomApply": {"transforms": ["RandomVerticalFlip"], "p": 0.5}},
                                                    {"Resize": {"size": 8, "interpolation": "nearest"}}])
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
