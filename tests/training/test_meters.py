"""The loss meter (per-batch losses on the device, the epoch's sample-weighted mean) and the
metric set's state across a checkpoint."""

from __future__ import annotations

import pytest
import torch

from netspec.training.meters import LossMeter, MetricSet, output_scores
from netspec.training.spec import LossSpec, MetricSpec


def test_loss_meter_is_the_sample_weighted_mean_and_grows() -> None:
    m = LossMeter()
    values = torch.rand(600, generator=torch.Generator().manual_seed(0))
    counts = [1 + i % 7 for i in range(600)]
    for v, n in zip(values, counts):  # past the first 256 slots: the buffer grows on the device
        m.update(v, n)
    expected = (values.double() * torch.tensor(counts, dtype=torch.float64)).sum() / sum(counts)
    assert m.compute() == pytest.approx(float(expected), rel=1e-12)
    assert torch.equal(m.used(), values) and len(m) == 600
    again = LossMeter()
    again.load_state_dict(m.state_dict())
    assert again.compute() == m.compute()
    m.reset()
    assert m.compute() != m.compute()  # nan when empty


def test_metric_set_state_round_trip() -> None:
    specs = [MetricSpec.model_validate(x) for x in ["accuracy", "top_k_accuracy"]]
    out, y = torch.randn(40, 6), torch.randint(6, (40,))
    whole, half = MetricSet(specs, ["y"]), MetricSet(specs, ["y"])
    for i in range(0, 40, 8):
        whole.update({"y": out[i : i + 8]}, y[i : i + 8], torch.tensor(float(i)), 8)
    for i in range(0, 16, 8):
        half.update({"y": out[i : i + 8]}, y[i : i + 8], torch.tensor(float(i)), 8)
    resumed = MetricSet(specs, ["y"])
    resumed.load_state_dict(half.state_dict())
    for i in range(16, 40, 8):
        resumed.update({"y": out[i : i + 8]}, y[i : i + 8], torch.tensor(float(i)), 8)
    assert resumed.compute() == whole.compute()


def test_output_scores_from_the_loss() -> None:
    two = ["probs", "logits"]
    spec = LossSpec.model_validate(
        {"outputs": {"probs": "BCELoss", "logits": {"sum": ["CrossEntropyLoss", {"Dice": {}}]}}}
    )
    assert output_scores(spec, two) == {"probs": (False, "float"), "logits": (True, None)}
    assert output_scores(LossSpec.model_validate({"Dice": {"from_logits": False}}), ["y"]) == {"y": (False, "custom")}
    assert output_scores(None, ["y"]) == {"y": (None, None)}
