"""How predictions read each output of the shipped specs: logits or probabilities, and what kind."""

from __future__ import annotations

import pytest
import torch

from netspec.interop.scores import Reading, reading_of, rows_of

from .cases import compiled

# spec -> (output, kind, activation): what its loss and its last node say the output holds.
READINGS = {
    "lenet": ("logits", "classes", "softmax"),  # CrossEntropyLoss on logits
    "mnist_cnn": ("probs", "classes", "none"),  # ends in Softmax: probabilities already
    "logistic_regression": ("prob", "binary", "none"),  # Sigmoid + BCELoss
    "regression": ("predict", "values", "none"),  # MSELoss
    "list_dense": ("out", "values", "none"),
    "transformer_classifier": ("logits", "classes", "softmax"),
    "two_input_net": ("out", "classes", "none"),  # ends in Sigmoid (as the seed wrote it)
    "vae": ("recon", "values", "none"),  # no loss on the first output
    "unet": ("logits", "masks", "softmax"),  # CrossEntropyLoss + Dice on (B, 2, H, W)
}


@pytest.mark.parametrize("name", sorted(READINGS))
def test_shipped_specs_are_read_as_their_losses_say(name) -> None:
    c = compiled(name)
    output, kind, activation = READINGS[name]
    assert reading_of(c.spec, c.graph, output) == Reading(output, kind, activation)


def test_a_later_output_is_read_by_its_own_loss() -> None:
    c = compiled("vae")
    assert reading_of(c.spec, c.graph, "recon_image") == Reading("recon_image", "masks", "none")  # BCELoss, 1 channel


def test_rows_of_each_kind() -> None:
    binary = rows_of(Reading("p", "binary", "sigmoid"), torch.tensor([[2.0], [-1.0]]), ["a", "b"], None, 5)
    assert binary == [  # p_1 is P(y=1) = sigmoid(logit) in both rows, not the chosen class's probability
        {"input": "a", "class": "1", "p_1": 0.880797},
        {"input": "b", "class": "0", "p_1": 0.2689414},
    ]
    named = rows_of(Reading("p", "binary", "none"), torch.tensor([0.25]), ["a"], ["benign", "malignant"], None)
    assert named == [{"input": "a", "class": "benign", "p_malignant": 0.25}]
    masks = rows_of(Reading("m", "masks", "none"), torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]]), ["x"], None, 5)
    assert masks[0]["mask"].tolist() == [[1, 0]]
    values = rows_of(Reading("y", "values", "none"), torch.tensor([[1.5, 2.0]]), ["x"], None, 5)
    assert values == [{"input": "x", "y_0": 1.5, "y_1": 2.0}]
    top = rows_of(Reading("c", "classes", "none"), torch.tensor([[0.2, 0.8]]), ["x"], ["no", "yes"], top_k=9)
    assert top == [{"input": "x", "class": "yes", "probability": 0.8, "class_2": "no", "probability_2": 0.2}]
    every = rows_of(Reading("c", "classes", "softmax"), torch.tensor([[1.0, 3.0, 2.0]]), ["x"], None)
    p = torch.tensor([1.0, 3.0, 2.0]).softmax(0).tolist()
    assert every == [
        {"input": "x", "class": "1", "p_0": pytest.approx(p[0]), "p_1": pytest.approx(p[1]), "p_2": pytest.approx(p[2])}
    ]
    many = rows_of(Reading("c", "classes", "softmax"), torch.arange(21.0)[None], ["x"], None)  # > 20 classes: top 5
    assert list(many[0]) == ["input", "class", "probability"] + [
        f"{k}_{r}" for r in range(2, 6) for k in ("class", "probability")
    ]
    assert many[0]["class"] == "20" and many[0]["class_5"] == "16"
