"""The importer reads buffers (a Buffer node keeping its key, its value written in the spec),
a child's tensors read without calling it, and torch functions the spec has ops for; each model
is compiled from its imported spec, loaded strictly and compared with the original."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.nodes.initializers import relative_position_index_

from . import buffer_models as bm


def _round_trip(model: nn.Module, shape: tuple[int, ...]) -> str:
    torch.manual_seed(0)
    imported = spec_from_module(model, {"x": shape}, name="m")
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)  # the same keys and shapes
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(x), model.eval()(x))
    return imported.text


def test_buffers_read_in_forward_are_buffer_nodes_with_their_keys_and_values() -> None:
    model = bm.Normalised()
    text = _round_trip(model, (3, 40, 40))
    assert "- mean: {Buffer: {value: [0.485, 0.456, 0.406], shape: [3, 1, 1]}}" in text
    assert "- std: {Buffer: {value: [0.229, 0.224, 0.225], shape: [3, 1, 1], persistent: false}}" in text
    assert "- table: {Buffer: {shape: [3, 40, 40]}}" in text  # over 4096 values: from the state_dict
    built = compile_spec(load_spec(text=text)).module
    assert set(built.state_dict()) == set(model.state_dict())  # std, not persistent, has no key
    assert torch.equal(built.std, model.std)  # its value is in the spec, digit for digit


def test_a_swin_index_table_indexing_a_parameter_and_a_childs_weight_round_trip() -> None:
    text = _round_trip(bm.WindowBias(), (9, 8))
    init = "init: {relative_position_index_: {window: [3, 3]}}"
    assert f"- index: {{Buffer: {{shape: [9, 9], {init}, dtype: int64, persistent: false}}}}" in text
    assert "- k_bias: {Buffer: {shape: [8], persistent: false}}" in text  # zeros: the default init
    assert "- qkv: {Linear: {}}\n    from: []" not in text  # a holder block, not the layer
    assert "  LinearBlock:" in text and "- weight: {Parameter: {shape: [24, 8]" in text
    assert "- einsum: bhqd,bhkd->bhqk" in text
    assert "{index: '[index_view]'}" in text and "{index: '[index]'}" in text  # index.view(-1): the buffer reshaped


def test_torch_functions_with_spec_ops_round_trip() -> None:
    text = _round_trip(bm.Functions(), (4, 6))
    for line in ("- roll: {shifts: [1, -2], dims: [1, 2]}", "- normalize: 2", "- group_norm: 2", "- tile: [1, 2]"):
        assert line in text
    assert "- group_norm: 2\n    from: [add, weight, bias]" in text  # the module's weights: its keys
    assert "- masked_fill: 0.5" in text and "{index: '[:, pick]'}" in text and "- gather: 2" in text
    assert "- where_1_not: {logical_not: {}}\n  - where: 1.0" in text  # torch.where(c, 1.0, y): where(~c, y, 1.0)


def test_a_big_buffer_outside_the_state_dict_is_refused_in_one_line() -> None:
    model = bm.Normalised()
    model.register_buffer("table", torch.rand(3, 40, 40), persistent=False)
    with pytest.raises(SpecError) as e:
        spec_from_module(model, {"x": (3, 40, 40)})
    assert str(e.value) == (
        f"{bm.__name__}.Normalised: forward reads `table`, a buffer left out of the state_dict "
        "(persistent=False) of 4,800 values: a spec writes a value of at most 4,096 numbers; register it "
        "as a persistent buffer, so its value travels in the state_dict"
    )


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (7, 7)])
def test_relative_position_index_is_swins(h: int, w: int) -> None:
    got = relative_position_index_(torch.empty(h * w, h * w, dtype=torch.long), [h, w])
    assert torch.equal(got, bm.swin_index(h, w))


def test_relative_position_index_with_a_class_token_is_beits() -> None:
    timm = pytest.importorskip("timm")
    want = timm.layers.gen_relative_position_index((4, 5), class_token=True)
    got = relative_position_index_(torch.empty(21 * 21, dtype=torch.long), [4, 5], class_token=True)
    assert torch.equal(got, want.flatten())
