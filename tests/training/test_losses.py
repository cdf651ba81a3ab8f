"""Losses: the whole registry, the netspec losses against references, target adaptation,
sums / per-output losses, and the errors a `loss:` section can produce."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from netspec.errors import SpecError
from netspec.training.criterion import build_criterion
from netspec.training.losses import (
    LOSSES,
    DiceLoss,
    FocalLoss,
    IoULoss,
    adapt_target,
)
from netspec.training.spec import LossSpec

from standins import make_spec

torch.manual_seed(0)

# Inputs per target kind; losses with unusual targets get their own.
SPECIAL = {
    "HingeEmbeddingLoss": (torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float() * 2 - 1),
    "MultiLabelMarginLoss": (torch.randn(4, 3), torch.tensor([[0, 2, -1]] * 4)),
    "SoftMarginLoss": (torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float() * 2 - 1),
    "KLDivLoss": (torch.randn(4, 3).log_softmax(1), torch.rand(4, 3).softmax(1)),
    "PoissonNLLLoss": (torch.randn(4, 3), torch.rand(4, 3) * 3),
    "BCELoss": (torch.rand(4, 3), torch.randint(0, 2, (4, 3))),
    "NTXent": (torch.randn(4, 8), torch.randn(4, 8)),  # two views' embeddings
}


def example(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name in SPECIAL:
        return SPECIAL[name]
    kind = LOSSES[name].target
    if kind == "index":
        return torch.randn(4, 3), torch.randint(3, (4,))
    if kind == "custom":
        return torch.randn(2, 3, 4, 4), torch.randint(3, (2, 4, 4))
    return torch.randn(4, 3), torch.rand(4, 3)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # KLDivLoss's own advice
@pytest.mark.parametrize("name", sorted(n for n, e in LOSSES.items() if e.inputs == 2))
def test_every_registered_loss_builds_and_runs(name: str) -> None:
    output, target = example(name)
    crit = build_criterion(LossSpec.model_validate(name), ["y"])
    output = output.clone().requires_grad_()
    value = crit({"y": output}, target)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert output.grad is not None


@pytest.mark.parametrize("name", sorted(n for n, e in LOSSES.items() if e.inputs != 2))
def test_losses_taking_more_tensors_are_refused_clearly(name: str) -> None:
    with pytest.raises(SpecError, match=r"compares .* tensors") as err:
        make_spec(loss=name, outputs=["y"])
    assert err.value.path == ("loss",)


# --------------------------------------------------------------------------- target adaptation


def test_seed_000_bce_on_n1_output_and_n_labels() -> None:
    prob = torch.sigmoid(torch.randn(6, 1))
    labels = torch.tensor([0, 1, 1, 0, 1, 0])  # (N,) and integer
    crit = build_criterion(LossSpec.model_validate("BCELoss"), ["prob"])
    expected = F.binary_cross_entropy(prob.squeeze(), labels.float())  # the seed's y_pred.squeeze()
    torch.testing.assert_close(crit({"prob": prob}, labels), expected)


def test_adapt_target_rules() -> None:
    assert adapt_target("float", torch.zeros(3, 1), torch.tensor([1, 0, 1])).dtype == torch.float32
    assert adapt_target("float", torch.zeros(2, 3), torch.zeros(3, 2)).shape == (3, 2)  # not just the same count
    assert adapt_target("index", torch.zeros(3, 5), torch.tensor([[1], [0], [4]])).shape == (3,)
    assert adapt_target("index", torch.zeros(3, 5), torch.tensor([1.0, 0.0, 4.0])).dtype == torch.int64
    probs = torch.rand(3, 5)
    assert adapt_target("index", torch.zeros(3, 5), probs) is probs  # CE with class probabilities


def test_class_weight_list_becomes_a_tensor() -> None:
    w = [1, 1, 1, 1, 3, 1, 1, 1, 1, 1]  # seed 003's commented-out weighting
    out, y = torch.randn(8, 10), torch.randint(10, (8,))
    crit = build_criterion(LossSpec.model_validate({"CrossEntropyLoss": {"weight": w}}), ["y"])
    torch.testing.assert_close(
        crit({"y": out}, y), F.cross_entropy(out, y, weight=torch.tensor(w, dtype=torch.float32))
    )
    assert crit.state_dict()["losses.0.weight"].tolist() == [float(v) for v in w]  # moves with .to(device)


def test_pos_weight_list_for_bce_with_logits() -> None:
    out, y = torch.randn(4, 2), torch.rand(4, 2)
    crit = build_criterion(LossSpec.model_validate({"BCEWithLogitsLoss": {"pos_weight": [2.0, 0.5]}}), ["y"])
    torch.testing.assert_close(
        crit({"y": out}, y), F.binary_cross_entropy_with_logits(out, y, pos_weight=torch.tensor([2.0, 0.5]))
    )


# --------------------------------------------------------------------------- netspec losses against references


def test_dice_binary_matches_formula() -> None:
    logits, mask = torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.5).float()
    p = logits.sigmoid()
    expected = 1 - (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
    torch.testing.assert_close(DiceLoss()(logits, mask), expected)
    torch.testing.assert_close(DiceLoss()(logits, mask.squeeze(1)), expected)  # (N, H, W) mask too


def test_dice_multiclass_softmax_onehot() -> None:
    logits, labels = torch.randn(2, 3, 4, 4), torch.randint(3, (2, 4, 4))
    p = logits.softmax(1)
    onehot = F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    per_class = [(2 * (p[:, c] * onehot[:, c]).sum() + 1) / (p[:, c].sum() + onehot[:, c].sum() + 1) for c in range(3)]
    torch.testing.assert_close(DiceLoss()(logits, labels), 1 - torch.stack(per_class).mean())


def test_dice_and_iou_of_a_perfect_prediction() -> None:
    labels = torch.randint(3, (2, 4, 4))
    logits = F.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50
    assert float(DiceLoss(smooth=0)(logits, labels)) == pytest.approx(0, abs=1e-6)
    assert float(IoULoss(smooth=0)(logits, labels)) == pytest.approx(0, abs=1e-6)


def test_iou_binary_matches_formula() -> None:
    logits, mask = torch.randn(3, 7), (torch.rand(3, 7) > 0.5).float()
    p = logits.sigmoid()
    inter = (p * mask).sum()
    torch.testing.assert_close(IoULoss()(logits, mask), 1 - (inter + 1) / (p.sum() + mask.sum() - inter + 1))


def test_dice_bce_is_bce_with_logits_plus_dice() -> None:
    logits, mask = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    crit = build_criterion(LossSpec.model_validate("DiceBCE"), ["y"])
    expected = F.binary_cross_entropy_with_logits(logits, mask) + DiceLoss()(logits, mask)
    torch.testing.assert_close(crit({"y": logits}, mask), expected)


def test_dice_from_probabilities() -> None:
    probs, mask = torch.rand(2, 6), (torch.rand(2, 6) > 0.5).float()
    expected = 1 - (2 * (probs * mask).sum() + 1) / (probs.sum() + mask.sum() + 1)
    torch.testing.assert_close(DiceLoss(from_logits=False)(probs, mask), expected)


def test_focal_binary_matches_torchvision() -> None:
    from torchvision.ops import sigmoid_focal_loss

    logits, target = torch.randn(8, 3), (torch.rand(8, 3) > 0.7).float()
    for alpha, gamma in [(0.25, 2.0), (0.8, 2.0), (-1, 0.5)]:
        ours = FocalLoss(alpha=None if alpha < 0 else alpha, gamma=gamma)(logits, target)
        torch.testing.assert_close(ours, sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="mean"))


def test_focal_is_per_element_unlike_the_seed() -> None:
    # The seed applied (1 - exp(-BCE))**gamma to the batch-mean BCE: a rescaled BCE.
    logits, target = torch.tensor([4.0, -4.0, 0.1]), torch.tensor([1.0, 0.0, 1.0])
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    ours = FocalLoss(alpha=None, gamma=2.0)(logits, target)
    assert float(ours) == pytest.approx(float((bce * (1 - torch.exp(-bce)) ** 2).mean()), rel=1e-5)


def test_focal_multiclass_gamma_0_is_cross_entropy() -> None:
    logits, labels = torch.randn(6, 4), torch.randint(4, (6,))
    torch.testing.assert_close(FocalLoss(alpha=None, gamma=0.0)(logits, labels), F.cross_entropy(logits, labels))
    weights = [1.0, 2.0, 0.5, 1.0]
    torch.testing.assert_close(
        FocalLoss(alpha=weights, gamma=0.0)(logits, labels),
        F.cross_entropy(logits, labels, weight=torch.tensor(weights), reduction="none").mean(),
    )


def test_dice_rejects_a_bad_mode() -> None:
    with pytest.raises(SpecError, match="mode must be") as err:
        make_spec(loss={"Dice": {"mode": "multi"}}, outputs=["y"])
    assert err.value.path == ("loss", "Dice")


# --------------------------------------------------------------------------- sums and outputs


def test_weighted_sum_unet_style() -> None:
    # milesial's U-Net: CrossEntropy + Dice on (N, C, H, W) logits and (N, H, W) labels.
    logits, labels = torch.randn(2, 3, 8, 8), torch.randint(3, (2, 8, 8))
    spec = LossSpec.model_validate({"sum": [{"CrossEntropyLoss": {}}, {"Dice": {}, "weight": 0.5}], "weight": 2.0})
    expected = 2.0 * (F.cross_entropy(logits, labels) + 0.5 * DiceLoss()(logits, labels))
    torch.testing.assert_close(build_criterion(spec, ["masks"])({"masks": logits}, labels), expected)


def test_loss_per_output() -> None:
    out = {"probs": torch.randn(4, 10), "features": torch.randn(4, 6)}
    targets = {"probs": torch.randint(10, (4,)), "feat": torch.randn(4, 6)}
    spec = LossSpec.model_validate(
        {"outputs": {"probs": "CrossEntropyLoss", "features": {"MSELoss": {}, "weight": 0.1, "target": "feat"}}}
    )
    crit = build_criterion(spec, ["probs", "features"])
    expected = F.cross_entropy(out["probs"], targets["probs"]) + 0.1 * F.mse_loss(out["features"], targets["feat"])
    torch.testing.assert_close(crit(out, targets), expected)


def test_a_single_loss_takes_the_short_path_and_gives_the_same_value() -> None:
    # one loss of weight 1: called directly (no sum); weighted, or a dict of targets: the same value
    logits, labels = torch.randn(5, 4), torch.randint(4, (5,))
    plain = build_criterion(LossSpec.model_validate("CrossEntropyLoss"), ["y"])
    assert plain.single is not None
    torch.testing.assert_close(plain({"y": logits}, labels), F.cross_entropy(logits, labels), rtol=0, atol=0)
    torch.testing.assert_close(plain({"y": logits}, {"y": labels}), F.cross_entropy(logits, labels), rtol=0, atol=0)
    torch.testing.assert_close(plain({"y": logits}, labels.float()), F.cross_entropy(logits, labels), rtol=0, atol=0)
    weighted = build_criterion(LossSpec.model_validate({"CrossEntropyLoss": {}, "weight": 0.5}), ["y"])
    assert weighted.single is None
    torch.testing.assert_close(weighted({"y": logits}, labels), 0.5 * F.cross_entropy(logits, labels))
    with pytest.raises(SpecError, match="reads target `y`"):
        plain({"y": logits}, {"a": labels, "b": labels})


def test_missing_target_key_is_a_data_error() -> None:
    crit = build_criterion(LossSpec.model_validate({"outputs": {"a": "MSELoss", "b": "MSELoss"}}), ["a", "b"])
    with pytest.raises(SpecError, match="reads target `b`") as err:
        crit({"a": torch.zeros(2), "b": torch.zeros(2)}, {"a": torch.zeros(2), "c": torch.zeros(2)})
    assert "`c`" in str(err.value)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "loss, path, hint",
    [
        ("CrossEntropyLos", ("loss",), "CrossEntropyLoss"),
        ({"CrossEntropyLos": {}}, ("loss", "CrossEntropyLos"), "CrossEntropyLoss"),
        ({"name": "MSELos"}, ("loss", "name"), "MSELoss"),
        ({"sum": ["CrossEntropyLoss", {"Dise": {}}]}, ("loss", "sum", 1, "Dise"), "Dice"),
        (
            {"CrossEntropyLoss": {"label_smoothin": 0.1}},
            ("loss", "CrossEntropyLoss", "label_smoothin"),
            "label_smoothing",
        ),
        ({"name": "Dice", "args": {"smoth": 1}}, ("loss", "args", "smoth"), "smooth"),
    ],
)
def test_loss_errors_have_path_and_suggestion(loss: object, path: tuple, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(loss=loss, outputs=["y"])
    assert err.value.path == path
    assert f"`{hint}`" in (err.value.hint or "")


def test_loss_for_an_output_that_does_not_exist() -> None:
    with pytest.raises(SpecError, match="no output `featurs`") as err:
        make_spec(loss={"outputs": {"probs": "CrossEntropyLoss", "featurs": "MSELoss"}}, outputs=["probs", "features"])
    assert err.value.path == ("loss", "outputs", "featurs")
    with pytest.raises(SpecError) as err:
        make_spec(loss={"MSELoss": {}, "output": "feature"}, outputs=["probs", "features"])
    assert err.value.path == ("loss", "output") and "`features`" in (err.value.hint or "")


def test_multi_output_model_needs_to_say_which_output() -> None:
    with pytest.raises(SpecError, match="has 2 outputs") as err:
        make_spec(loss="CrossEntropyLoss", outputs=["probs", "features"])
    assert "output: probs" in (err.value.hint or "")


def test_structure_errors() -> None:
    for bad in [{"CrossEntropyLoss": {}, "Dice": {}}, {"Dice": 3}, {"name": "Dice", "sum": []}, {"weight": 2}]:
        with pytest.raises(ValueError):
            LossSpec.model_validate(bad)
    with pytest.raises(ValueError, match="did you mean `weight`"):
        LossSpec.model_validate({"Dice": {}, "wieght": 2})
