"""netspec.data.sources.generated: the seeds' toy problems are exactly the seeds' tensors."""

from __future__ import annotations

import pytest
import torch

from ..helpers import build, spec


def test_gaussian_clusters_is_seed_000():
    torch.manual_seed(10)  # the seed's own code
    n_data = torch.ones(100, 2)
    x0 = torch.normal(1.7 * n_data, 1) + 1
    x1 = torch.normal(-1.7 * n_data, 1) + 1
    loaders = build(
        {"train": {"source": "gaussian_clusters", "seed": 10}, "batch_size": 200, "loader": {"shuffle": False}},
        inputs=["x"],
    )
    inputs, y = next(iter(loaders.train))
    assert torch.equal(inputs["x"], torch.cat([x0, x1]))
    assert torch.equal(y, torch.cat([torch.zeros(100), torch.ones(100)]))


def test_gaussian_clusters_trains_logistic_regression():
    """Seed 000 end to end: the data set is learnable by the seed's model and recipe."""
    loaders = build({"train": {"source": "gaussian_clusters", "seed": 10}, "batch_size": 200}, inputs=["x"])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    accuracy = 0.0
    for _ in range(1000):  # the seed's loop: stop once training accuracy exceeds 0.99
        inputs, y = next(iter(loaders.train))
        opt.zero_grad()
        out = model(inputs["x"]).squeeze(1)
        torch.nn.functional.binary_cross_entropy(out, y).backward()
        opt.step()
        accuracy = ((out > 0.5).float() == y).float().mean().item()
        if accuracy > 0.99:
            break
    assert accuracy > 0.99


def test_function_regression_is_seed_003():
    torch.manual_seed(3)
    x = torch.unsqueeze(torch.linspace(-1, 1, 1000), dim=1)
    y = x.pow(2) + 0.1 * torch.normal(torch.zeros(x.size()))
    loaders = build(
        {"train": {"source": "function_regression", "seed": 3}, "batch_size": 1000, "loader": {"shuffle": False}},
        inputs=["x"],
    )
    inputs, target = next(iter(loaders.train))
    assert torch.equal(inputs["x"], x) and torch.equal(target, y)
    sin = build(
        {
            "train": {"source": "function_regression", "function": "sin", "noise": 0},
            "batch_size": 5,
            "loader": {"shuffle": False},
        },
        inputs=["x"],
    )
    xs, ys = next(iter(sin.train))
    assert torch.allclose(ys, torch.sin(xs["x"]))
    with pytest.raises(Exception, match="function"):
        spec(train={"source": "function_regression", "function": "__import__('os')"})


def test_shapes_and_random_segmentation():
    loaders = build(
        {
            "train": {"source": "shapes", "n": 8, "size": 32, "channels": 3},
            "batch_size": 8,
            "loader": {"shuffle": False},
        }
    )
    inputs, mask = next(iter(loaders.train))
    image = inputs["image"]
    assert image.shape == (8, 3, 32, 32) and mask.shape == (8, 32, 32) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2} and (mask > 0).any(dim=(1, 2)).all()
    # shapes are bright, background dark: a model can learn it
    assert image[:, 0][mask > 0].mean() > image[:, 0][mask == 0].mean() + 0.4
    binary = build({"train": {"source": "shapes", "n": 4, "n_classes": 1}, "batch_size": 4})
    assert next(iter(binary.train))[1].shape == (4, 1, 64, 64)
    rs = build({"train": {"source": "random_segmentation", "n": 4, "image_shape": [1, 16, 16], "n_classes": 5}})
    _, m = next(iter(rs.train))
    assert m.shape == (4, 16, 16) and int(m.max()) < 5 and rs.info["num_classes"] == 5


def test_random_source_shapes_and_split_seeds():
    s = {
        "train": {"source": "random", "n": 10, "shapes": {"image": [1, 8, 8], "extra": [3]}},
        "test": {"source": "random", "n": 10, "shapes": {"image": [1, 8, 8], "extra": [3]}},
        "batch_size": 10,
        "loader": {"shuffle": False},
    }
    loaders = build(s, inputs=["image", "extra"])
    (tr, y), (te, _) = next(iter(loaders.train)), next(iter(loaders.test))
    assert tr["image"].shape == (10, 1, 8, 8) and tr["extra"].shape == (10, 3) and y.dtype == torch.int64
    assert not torch.equal(tr["image"], te["image"])  # train and test differ unless seeded alike
    again = build(s, inputs=["image", "extra"])
    assert torch.equal(next(iter(again.train))[0]["image"], tr["image"])
