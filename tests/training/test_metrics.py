"""Metrics: every registry entry against torchmetrics' functional form on the whole data, fed in
batches (and in chunks); logits vs probabilities; the names a spec's metrics are logged under."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error
from torchmetrics.functional.classification import (
    binary_accuracy,
    multiclass_accuracy,
    multiclass_jaccard_index,
    multilabel_accuracy,
)
from torchmetrics.functional.segmentation import dice_score

from netspec.errors import SpecError
from netspec.training.meters import MetricSet
from netspec.training.metrics import METRICS
from netspec.training.spec import LossSpec, MetricSpec

from standins import make_spec

g = torch.Generator().manual_seed(0)
DATA = {  # (outputs, targets) of a whole "epoch", fed to the metrics in batches
    "classification": (torch.randn(50, 4, generator=g), torch.randint(4, (50,), generator=g)),
    "segmentation": (torch.randn(6, 3, 5, 5, generator=g), torch.randint(3, (6, 5, 5), generator=g)),
    "regression": (torch.randn(50, 1, generator=g), torch.randn(50, generator=g)),
}


def _iou(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return multiclass_jaccard_index(out.argmax(1).flatten(), y.flatten(), out.shape[1], average="macro")


#: name -> (default arguments, the value torchmetrics gives on the whole data). A metric added to
#: the registry needs an entry here: every metric is held to torchmetrics.
REFERENCES: dict[str, Callable[[torch.Tensor, torch.Tensor], Any]] = {
    "accuracy": lambda out, y: multiclass_accuracy(out, y, out.shape[1], average="micro"),
    "top_k_accuracy": lambda out, y: multiclass_accuracy(
        out, y, out.shape[1], top_k=min(5, out.shape[1]), average="micro"
    ),
    "dice": lambda out, y: dice_score(
        out.argmax(1), y, out.shape[1], average="macro", aggregation_level="global", input_format="index"
    ),
    "iou": _iou,
    "mse": lambda out, y: mean_squared_error(out.squeeze(1), y),
    "mae": lambda out, y: mean_absolute_error(out.squeeze(1), y),
}


def fed(metric: Any, output: torch.Tensor, target: torch.Tensor, batch: int) -> Any:
    for i in range(0, len(output), batch):
        metric.update(output[i : i + batch], target[i : i + batch])
    return metric


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_matches_torchmetrics(name: str) -> None:
    assert name in REFERENCES, f"metric `{name}` has no torchmetrics reference in this test"
    output, target = DATA[METRICS[name].task]
    expected = float(REFERENCES[name](output, target))
    for batch in (1, 4, len(output)):  # an epoch's value, not a mean of batch values
        assert fed(METRICS[name](), output, target, batch).compute() == pytest.approx(expected, rel=1e-6), batch


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_resumes_mid_epoch_and_resets(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    output, target = DATA[METRICS[name].task]
    whole = fed(METRICS[name](), output, target, 2).compute()
    monkeypatch.setattr(METRICS[name], "chunk", 3)  # part of the batches still waiting for an update
    half = fed(METRICS[name](), output[:4], target[:4], 1)
    state = half.state_dict()  # what a checkpoint taken mid-epoch holds
    restored = METRICS[name]()
    restored.load_state_dict(
        torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, state)
    )
    assert fed(restored, output[4:], target[4:], 2).compute() == pytest.approx(whole, rel=1e-6)
    restored.reset()
    assert restored.compute() != restored.compute()  # nan when empty
    assert METRICS[name]().state_dict() == {}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_refuses_a_forged_state(name: str) -> None:
    """A checkpoint's metric state is data from a file: anything but what the metric saves is refused
    (the checkpoint loader turns the ValueError into "damaged ... its `meters` cannot be restored")."""
    output, target = DATA[METRICS[name].task]
    state = fed(METRICS[name](), output[:4], target[:4], 1).state_dict()
    forged = [
        {"config": state["config"]},
        {**state, "updates": "3"},
        {**state, "updates": 0},
        {**state, "state": {"x": torch.zeros(1)}},
        {**state, "state": {k: "1" for k in state["state"]}},
        {**state, "config": ["num_classes"]},
    ]
    for bad in forged:
        with pytest.raises(ValueError):
            METRICS[name]().load_state_dict(bad)
    METRICS[name]().load_state_dict(state)  # the real one loads


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_checks_its_state_against_a_fresh_one(name: str) -> None:
    """Right keys, wrong content: each state must have the shape and dtype a fresh metric of the
    saved configuration holds, the configuration must be what the saved shapes give, and those
    shapes the model's output's. Each is one ValueError saying what is wrong."""
    output, target = DATA[METRICS[name].task]
    state = fed(METRICS[name](), output[:4], target[:4], 1).state_dict()
    key = next(iter(state["state"]))
    value = state["state"][key]
    wider = torch.zeros(7, *value.shape, dtype=value.dtype)
    forged = {
        "shape": ({**state, "state": {**state["state"], key: wider}}, f"state `{key}` is a tensor of shape [7"),
        "dtype": ({**state, "state": {**state["state"], key: value.to(torch.float64)}}, "(float64); a fresh one is"),
        "list": ({**state, "state": {**state["state"], key: [value]}}, f"state `{key}` is a list, not a tensor"),
        "config": (
            {**state, "config": {**state["config"], "classes": 9}}
            if state["config"]
            else {**state, "config": {"classes": 9}},
            "is not the one its shapes give",
        ),
        "dtype name": ({**state, "shapes": {**state["shapes"], "target_dtype": "load"}}, "`shapes` is not a pair"),
    }
    for bad, says in forged.values():
        with pytest.raises(ValueError, match=re.escape(says)):
            METRICS[name]().load_state_dict(bad)
    with pytest.raises(ValueError, match=re.escape(f"saved for an output of shape {list(output.shape[1:])}")):
        METRICS[name]().load_state_dict(state, output_shape=(11, *output.shape[2:]))
    METRICS[name]().load_state_dict(state, output_shape=tuple(output.shape[1:]))  # the real one loads


def test_binary_accuracy_of_logits_follows_the_loss() -> None:
    """Issue 9: BCEWithLogitsLoss outputs are logits, so 0.5 is a threshold on sigmoid(logit),
    as torchmetrics has it; thresholding the raw logits at 0.5 counts (0, 0.5) wrong."""
    logits = torch.randn(1000, 1, generator=torch.Generator().manual_seed(3))
    y = (torch.rand(1000, generator=torch.Generator().manual_seed(4)) < torch.sigmoid(3 * logits[:, 0])).float()
    expected = float(binary_accuracy(torch.sigmoid(logits[:, 0]), y.long()))
    wrong = ((logits[:, 0] > 0.5).float() == y).float().mean().item()
    assert wrong != pytest.approx(expected)
    for loss in ("BCEWithLogitsLoss", {"Dice": {}}, {"DiceBCE": {}}):
        ms = MetricSet([MetricSpec.model_validate("accuracy")], ["y"], LossSpec.model_validate(loss))
        ms.update({"y": logits}, y, torch.tensor(0.0), 1000)
        assert ms.compute()["accuracy"] == pytest.approx(expected), loss
    probs = MetricSet([MetricSpec.model_validate("accuracy")], ["y"], LossSpec.model_validate("BCELoss"))
    probs.update({"y": torch.sigmoid(logits)}, y, torch.tensor(0.0), 1000)  # seed 000: probabilities
    assert probs.compute()["accuracy"] == pytest.approx(expected)
    said = MetricSet(
        [MetricSpec.model_validate({"accuracy": {"from_logits": True}})], ["y"], LossSpec.model_validate("MSELoss")
    )  # the metric's own word wins
    said.update({"y": logits}, y, torch.tensor(0.0), 1000)
    assert said.compute()["accuracy"] == pytest.approx(expected)


def test_accuracy_threshold_multilabel_and_soft_targets() -> None:
    b = METRICS["accuracy"](threshold=0.7)  # (N, 1) probabilities vs (N,) float labels
    b.update(torch.tensor([[0.9], [0.2], [0.6], [0.4]]), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert b.compute() == 0.75
    logits, labels = torch.randn(20, 3, generator=g), torch.randint(2, (20, 3), generator=g).float()
    ml = MetricSet([MetricSpec.model_validate("accuracy")], ["y"], LossSpec.model_validate("BCEWithLogitsLoss"))
    ml.update({"y": logits}, labels, torch.tensor(0.0), 20)  # multi-label: every element counts
    assert ml.compute()["accuracy"] == pytest.approx(
        float(multilabel_accuracy(logits, labels.long(), 3, average="micro"))
    )
    soft = F.softmax(torch.randn(20, 3, generator=g), 1)  # CrossEntropyLoss with class probabilities
    ce = MetricSet([MetricSpec.model_validate("accuracy")], ["y"], LossSpec.model_validate("CrossEntropyLoss"))
    ce.update({"y": logits}, soft, torch.tensor(0.0), 20)
    assert ce.compute()["accuracy"] == pytest.approx((logits.argmax(1) == soft.argmax(1)).float().mean().item())


def test_dice_and_iou_without_background_and_binary() -> None:
    out, y = DATA["segmentation"]
    expected = dice_score(
        out.argmax(1), y, 3, include_background=False, average="macro", aggregation_level="global", input_format="index"
    )
    assert fed(METRICS["dice"](include_background=False), out, y, 2).compute() == pytest.approx(float(expected))
    per_class = multiclass_jaccard_index(out.argmax(1).flatten(), y.flatten(), 3, average="none")
    assert fed(METRICS["iou"](include_background=False), out, y, 2).compute() == pytest.approx(
        float(per_class[1:].mean())
    )
    logits = torch.tensor([[3.0, -2.0, 1.0, -1.0]])  # binary: the foreground of one score per pixel
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    dice = METRICS["dice"]()
    dice.loss_logits = True
    dice.update(logits, mask)  # predicted {0, 2}, true {0, 3}
    assert dice.compute() == pytest.approx(2 * 1 / 4)
    iou = METRICS["iou"](from_logits=False)
    iou.update(torch.sigmoid(logits), mask)
    assert iou.compute() == pytest.approx(1 / 3)


def test_losses_that_disagree_on_logits_ask_for_from_logits() -> None:
    two = {"sum": ["BCEWithLogitsLoss", "MSELoss"]}
    with pytest.raises(SpecError, match="disagree whether it holds logits") as err:
        make_spec(loss=two, train={"metrics": ["accuracy"]})
    assert err.value.path == ("train", "metrics", 0) and "from_logits: true" in err.value.hint
    make_spec(loss=two, train={"metrics": [{"accuracy": {"from_logits": True}}, "mse"]})  # said, or no threshold


def test_metric_set_names_and_errors() -> None:
    ms = MetricSet([MetricSpec.model_validate(x) for x in ["accuracy", {"top_k_accuracy": {"k": 5}}]], ["y"])
    assert ms.keys() == ["loss", "accuracy", "top5_accuracy"]
    two = MetricSet([MetricSpec.model_validate({"accuracy": {}, "output": "probs"})], ["probs", "features"])
    assert two.keys() == ["loss", "probs_accuracy"]
    with pytest.raises(SpecError, match="listed twice"):
        make_spec(train={"metrics": ["accuracy"] * 2}, outputs=["y"])
    with pytest.raises(SpecError, match="say which one") as err:
        make_spec(
            loss={"CrossEntropyLoss": {}, "output": "probs"},
            train={"metrics": ["accuracy"]},
            outputs=["probs", "features"],
        )
    assert err.value.path == ("train", "metrics", 0)
    with pytest.raises(SpecError, match="threshold is a probability"):
        make_spec(train={"metrics": [{"accuracy": {"threshold": 0}}]})


@pytest.mark.parametrize("name", sorted(METRICS))
def test_batches_kept_for_later_do_not_alias_the_output(name: str) -> None:
    """A compiled model's CUDA graphs overwrite its output on the next step: what a metric keeps
    for its next update must be its own."""
    output, target = DATA[METRICS[name].task]
    metric = METRICS[name]()
    metric.overwritten_on = frozenset({"cpu"})  # as a GPU's CUDA graphs do
    scratch = output.clone()
    metric.update(scratch, target)
    expected = METRICS[name]()
    expected.update(output, target)
    scratch.fill_(float("nan"))  # the next replay
    assert metric.compute() == pytest.approx(expected.compute())


def test_a_cpu_output_is_kept_without_a_copy_and_prepared_once_per_chunk() -> None:
    metric, reference = METRICS["accuracy"](), METRICS["accuracy"]()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 5, generator=g), torch.randint(5, (n,), generator=g)) for n in (8,) * 40 + (3,)]
    for output, target in batches:
        metric.update(output, target)
        reference.update(output, target)
        reference._flush()  # one update per batch, as before chunking
    assert metric._pending[-1][0] is batches[-1][0]  # no copy on the CPU
    assert metric._updates == 1  # 32 batches in the first chunk; the rest waits for compute
    assert metric.compute() == reference.compute()
