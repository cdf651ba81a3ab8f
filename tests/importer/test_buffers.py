"""The importer reads buffers (a Buffer node keeping its key, its value written in the spec),
a child's tensors read without calling it, and torch functions the spec has ops for; each model
is compiled from its imported spec, loaded strictly and compared with the original."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import netspec
from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.buffers import sidecar_key, table_init
from netspec.nodes.initializers import (
    INIT_FUNCTIONS,
    attention_bias_index_,
    log_offsets_,
    log_relative_coords_,
    relative_position_index_,
    shifted_window_mask_,
)

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


def test_a_big_buffer_outside_the_state_dict_is_read_from_a_file_beside_the_spec(tmp_path: Path) -> None:
    model = bm.Normalised()
    model.register_buffer("table", torch.rand(3, 40, 40), persistent=False)  # 4,800 values, no table init
    imported = spec_from_module(model, {"x": (3, 40, 40)}, name="m")
    key = sidecar_key("table", model.table)
    line = f"- table: {{Buffer: {{shape: [3, 40, 40], file: m.buffers.pt, key: {key}, persistent: false}}}}"
    assert line in imported.text and imported.checked is not None  # the round trip read the file
    assert list(imported.files) == ["m.buffers.pt"] and torch.equal(imported.files["m.buffers.pt"][key], model.table)
    torch.save(imported.files["m.buffers.pt"], tmp_path / "m.buffers.pt")
    (tmp_path / "m.yaml").write_text(imported.text)
    built = compile_spec(load_spec(tmp_path / "m.yaml")).module
    built.load_state_dict(model.state_dict(), strict=True)  # the table is in no state_dict
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(built.eval()(x), model.eval()(x))


def test_equal_big_buffers_are_one_tensor_of_the_file() -> None:
    a, b = torch.rand(5000), torch.rand(5000)
    assert sidecar_key("mask", a) == sidecar_key("mask", a.clone()) != sidecar_key("mask", b)
    assert sidecar_key("mask", a) != sidecar_key("mask", a.double())  # the dtype is part of the values


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (7, 7)])
def test_relative_position_index_is_swins(h: int, w: int) -> None:
    got = relative_position_index_(torch.empty(h * w, h * w, dtype=torch.long), [h, w])
    assert torch.equal(got, bm.swin_index(h, w))


def test_relative_position_index_with_a_class_token_is_beits() -> None:
    timm = pytest.importorskip("timm")
    want = timm.layers.gen_relative_position_index((4, 5), class_token=True)
    got = relative_position_index_(torch.empty(21 * 21, dtype=torch.long), [4, 5], class_token=True)
    assert torch.equal(got, want.flatten())


def test_tables_are_made_by_their_inits_and_round_trip() -> None:
    model = bm.Tables()
    text = _round_trip(model, (20, 16, 16))
    mask = "{shifted_window_mask_: {size: [20, 16], window: [4, 4], shift: [2, 2]}}"
    assert f"- mask: {{Buffer: {{shape: [20, 16, 16], init: {mask}, persistent: false}}}}" in text  # 5,120 values
    index = "{attention_bias_index_: {resolution: [4, 4]}}"
    assert f"- idx: {{Buffer: {{shape: [16, 16], init: {index}, dtype: int64, persistent: false}}}}" in text
    assert (
        "- coords: {Buffer: {shape: [256, 2], init: {log_relative_coords_: {window: [4, 4]}}, persistent: false}}"
        in text
    )
    assert "{index: '[:, :, ::2, ::2]'}" in text  # a slice's step: the index op
    built = compile_spec(load_spec(text=text)).module
    for name in ("mask", "idx", "coords"):  # value for value, though the state_dict holds none of them
        assert torch.equal(getattr(built, name), getattr(model, name)), name


def test_attention_tables_are_inits_of_a_spec() -> None:
    """Swin's shifted-window mask, LeViT's bias index and Swin V2's coordinates, written in a spec
    by the numbers that make them, equal the tables the models build (tests/importer/buffer_models.py)."""
    model = netspec.build_model(
        netspec.load_spec(
            text="name: t\ninputs: {x: [144, 2]}\nnodes:\n"
            "  - mask: {Buffer: {shape: [6, 16, 16], init: {shifted_window_mask_: "
            "{size: [12, 8], window: [4, 4], shift: [2, 2]}}, persistent: false}}\n"
            "  - idx: {Buffer: {shape: [12, 12], init: {attention_bias_index_: {resolution: [3, 4]}}, dtype: int64}}\n"
            "  - coords: {Buffer: {shape: [144, 2], init: {log_relative_coords_: {window: [3, 4]}}}}\n"
            "  - add: [x, coords]\n"
            "outputs: [mask, idx, add]\n"
        )
    )
    assert torch.equal(model.mask, bm.swin_mask((12, 8), (4, 4), (2, 2)))
    assert torch.equal(model.idx, bm.bias_index((3, 4)))
    assert torch.equal(model.coords, bm.log_coords(3, 4))
    assert set(model.state_dict()) == {"idx", "coords"}  # the mask is not persistent


@pytest.mark.parametrize(
    "size,window,shift", [((8, 8), (4, 4), (2, 2)), ((12, 8), (3, 4), (1, 2)), ((6, 4), (3, 2), (0, 1))]
)
def test_shifted_window_mask_is_swins(size: tuple, window: tuple, shift: tuple) -> None:
    want = bm.swin_mask(size, window, shift)
    got = shifted_window_mask_(torch.empty(want.shape), list(size), list(window), list(shift))
    assert torch.equal(got, want)
    found = table_init(want)  # the importer finds arguments that make it again
    assert found is not None and torch.equal(
        shifted_window_mask_(torch.empty(want.shape), **found["shifted_window_mask_"]), want
    )


@pytest.mark.parametrize("resolution", [(1, 1), (3, 5), (7, 7)])
def test_attention_bias_index_is_tinyvits(resolution: tuple) -> None:
    want = bm.bias_index(resolution)
    assert torch.equal(attention_bias_index_(torch.empty(want.shape, dtype=torch.long), list(resolution)), want)


@pytest.mark.parametrize("h,w", [(1, 2), (3, 4), (7, 7)])
def test_log_relative_coords_are_swin_v2s(h: int, w: int) -> None:
    want = bm.log_coords(h, w)
    assert torch.equal(log_relative_coords_(torch.empty(want.shape), [h, w]), want)


@pytest.mark.parametrize("mode", ["cr", "swin"])
@pytest.mark.parametrize("window", [(2, 2), (3, 5), (8, 8)])
def test_log_offsets_are_timms(window: tuple, mode: str) -> None:
    timm = pytest.importorskip("timm")
    want = timm.layers.gen_relative_log_coords(window, mode=mode)
    assert torch.equal(log_offsets_(torch.empty(want.shape), list(window), mode), want)


def test_the_tables_of_timms_modules_are_found_with_their_arguments() -> None:
    """Each table a timm module builds (Swin's mask, LeViT's index with and without a stride,
    Swin V2 CR's coordinates) is the init the importer picks for it, with the module's numbers."""
    timm = pytest.importorskip("timm")
    models = timm.models
    swin = models.swin_transformer.SwinTransformerBlock(8, (12, 8), 2, window_size=4, shift_size=2)
    levit = models.levit.AttentionDownsample(8, 16, 4, 2, stride=2, resolution=(7, 5))
    tiny = models.tiny_vit.Attention(8, 4, 2, resolution=(5, 6))
    cr = models.swin_transformer_v2_cr.WindowMultiHeadAttention(8, 2, (3, 5))
    v2 = models.swin_transformer_v2.WindowAttention(8, (4, 3), 2)
    mlp = timm.layers.RelPosMlp((5, 4), 2)
    cases = [
        (swin.attn_mask, {"shifted_window_mask_": {"size": [12, 8], "window": [4, 4], "shift": [2, 2]}}),
        (levit.attention_bias_idxs, {"attention_bias_index_": {"resolution": [7, 5], "stride": 2}}),
        (tiny.attention_bias_idxs, {"attention_bias_index_": {"resolution": [5, 6]}}),
        (cr.relative_coordinates_log, {"log_relative_coords_": {"window": [3, 5]}}),
        (v2.relative_coords_table, {"log_offsets_": {"window": [4, 3], "mode": "swin"}}),
        (mlp.rel_coords_log, {"log_offsets_": {"window": [5, 4]}}),
    ]
    for buffer, init in cases:
        assert table_init(buffer) == init
        ((name, args),) = init.items()
        assert torch.equal(INIT_FUNCTIONS[name](torch.empty_like(buffer), **args), buffer), name


class _Doubled(nn.Module):
    """A big tensor fx computes while tracing from a buffer (``self.noise * 2``): no buffer of the model."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("noise", torch.rand(5, 1000), persistent=False)

    def forward(self, x):  # x: (B, 5, 8)
        return x.mean(-1, keepdim=True) * (self.noise * 2)


def test_a_big_tensor_computed_from_no_input_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(_Doubled(), {"x": (5, 8)})
    assert str(e.value) == (
        f"{__name__}._Doubled: forward computes a tensor of 5,000 values from no input (`_tensor_constant0`): "
        "a spec writes a value of at most 4,096 numbers; register it as a buffer of the module, so its values "
        "travel with the model"
    )
