"""A child's method the forward runs instead of calling the child (timm's
``self.rel_pos.get_bias()``) is a call of the child with no input: its block's body is the
method, the child's keys kept; compiled from the imported spec, loaded strictly, compared."""

from __future__ import annotations

from torch import nn

from . import buffer_models as bm
from .test_buffers import _round_trip


def test_a_childs_method_is_a_call_of_the_child_with_no_input() -> None:
    model = bm.MethodAttention()
    text = _round_trip(model, (9, 8))
    assert "  LogCoordsBias:  # importer.buffer_models.LogCoordsBias: rel_pos\n    inputs: []\n" in text
    assert "  - rel_pos: {LogCoordsBias: {}}\n    from: []\n  - scaled_dot_product_attention" in text
    assert "      - mlp:\n          - Linear: {out_features: 16}" in text  # the child's child: rel_pos.mlp.0.weight
    index = "- index: {Buffer: {shape: [81], init: {relative_position_index_: {window: [3, 3]}}"
    coords = "- coords: {Buffer: {shape: [5, 5, 2], init: {log_offsets_: {window: [3, 3]}}, persistent: false}}"
    assert index in text and coords in text  # the child's buffers, in its block


class _GivenTheInput(nn.Module):
    """A child's child called on the parent's value: no method of the child alone, but a call of
    a module inside a child, so a node at its key (``rel_pos.mlp``)."""

    def __init__(self) -> None:
        super().__init__()
        self.rel_pos = bm.LogCoordsBias(3, 2)

    def forward(self, x):  # x: (B, 5, 2)
        return self.rel_pos.mlp(x + self.rel_pos.coords[0, :5])


def test_a_grandchild_given_the_parents_value_is_a_node_at_its_key() -> None:
    text = _round_trip(_GivenTheInput(), (5, 2))
    assert "  - rel_pos.mlp:\n      - Linear: {out_features: 16}\n" in text
    assert "LogCoordsBias" not in text  # no block of the child: its method is not what forward runs
