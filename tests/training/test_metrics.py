"""Metrics: the whole registry, each against a hand computation, epoch accumulation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from netspec.errors import SpecError
from netspec.training.metrics import METRICS, MetricSet
from netspec.training.spec import MetricSpec

from standins import make_spec

torch.manual_seed(0)

INPUTS = {
    "classification": (torch.randn(6, 4), torch.randint(4, (6,))),
    "segmentation": (torch.randn(2, 3, 5, 5), torch.randint(3, (2, 5, 5))),
    "regression": (torch.randn(6, 1), torch.randn(6)),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_accumulates_and_round_trips(name: str) -> None:
    output, target = INPUTS[METRICS[name].task]
    whole, halves = METRICS[name](), METRICS[name]()
    whole.update(output, target)
    halves.update(output[:1], target[:1])
    state = halves.state_dict()
    restored = METRICS[name]()
    restored.load_state_dict(state)  # resume mid-epoch
    restored.update(output[1:], target[1:])
    assert restored.compute() == pytest.approx(whole.compute())  # over the epoch, not a mean of batches
    whole.reset()
    assert whole.compute() != whole.compute()  # nan when empty


def test_accuracy_multiclass_and_binary() -> None:
    m = METRICS["accuracy"]()
    m.update(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    assert m.compute() == pytest.approx(2 / 3)
    b = METRICS["accuracy"]()  # seed 000: (N, 1) probabilities vs (N,) float labels, threshold 0.5
    b.update(torch.tensor([[0.9], [0.2], [0.6], [0.4]]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert b.compute() == 0.75
    logits = METRICS["accuracy"](threshold=0.0)
    logits.update(torch.tensor([2.0, -1.0]), torch.tensor([1, 1]))
    assert logits.compute() == 0.5


def test_top_k() -> None:
    out, y = torch.randn(20, 10), torch.randint(10, (20,))
    m = METRICS["top_k_accuracy"](k=3)
    m.update(out, y)
    assert m.key == "top3_accuracy"
    assert m.compute() == pytest.approx((out.topk(3, 1).indices == y[:, None]).any(1).float().mean().item())


def test_dice_and_iou_multiclass_match_hand_computation() -> None:
    out, y = INPUTS["segmentation"]
    pred = out.argmax(1)
    dice, iou = [], []
    for c in range(3):
        p, t = pred == c, y == c
        inter = (p & t).sum().item()
        dice.append(2 * inter / (p.sum() + t.sum()).item())
        iou.append(inter / (p | t).sum().item())
    for name, expected in (("dice", dice), ("iou", iou)):
        m = METRICS[name]()
        m.update(out, y)
        assert m.compute() == pytest.approx(sum(expected) / 3)
    m = METRICS["dice"](include_background=False)
    m.update(out, y)
    assert m.compute() == pytest.approx(sum(dice[1:]) / 2)


def test_binary_dice_from_logits() -> None:
    logits = torch.tensor([[3.0, -2.0, 1.0, -1.0]])
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    m = METRICS["dice"]()
    m.update(logits, mask)  # predicted {0, 2}, true {0, 3}
    assert m.compute() == pytest.approx(2 * 1 / 4)


def test_mse_mae() -> None:
    out, y = INPUTS["regression"]
    for name, fn in (("mse", F.mse_loss), ("mae", F.l1_loss)):
        m = METRICS[name]()
        m.update(out, y)
        assert m.compute() == pytest.approx(fn(out.squeeze(1), y).item(), rel=1e-6)


def test_metric_set_names_and_errors() -> None:
    ms = MetricSet([MetricSpec.model_validate(x) for x in ["accuracy", {"top_k_accuracy": {"k": 5}}]], ["y"])
    assert ms.keys() == ["loss", "accuracy", "top5_accuracy"]
    two = MetricSet([MetricSpec.model_validate({"accuracy": {}, "output": "probs"})], ["probs", "features"])
    assert two.keys() == ["loss", "probs_accuracy"]
    with pytest.raises(SpecError, match="listed twice"):
        make_spec(train={"metrics": ["accuracy"] * 2}, outputs=["y"])
    with pytest.raises(SpecError, match="say which one") as err:
        make_spec(loss={"CrossEntropyLoss": {}, "output": "probs"}, train={"metrics": ["accuracy"]},
                  outputs=["probs", "features"])
    assert err.value.path == ("train", "metrics", 0)
