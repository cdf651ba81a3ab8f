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
    assert binary == [
        {"input": "a", "class": "1", "probability": 0.880797},
        {"input": "b", "class": "0", "probability": 0.7310586},
    ]
    masks = rows_of(Reading("m", "masks", "none"), torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]]), ["x"], None, 5)
    assert masks[0]["mask"].tolist() == [[1, 0]]
    values = rows_of(Reading("y", "values", "none"), torch.tensor([[1.5, 2.0]]), ["x"], None, 5)
    assert values == [{"input": "x", "y_0": 1.5, "y_1": 2.0}]
    top = rows_of(Reading("c", "classes", "none"), torch.tensor([[0.2, 0.8]]), ["x"], ["no", "yes"], top_k=9)
    assert top == [{"input": "x", "class": "yes", "probability": 0.8, "class_2": "no", "probability_2": 0.2}]
