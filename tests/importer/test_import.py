"""netspec import on small models: what it reads (checked against the original module with the
same weights) and what it refuses, each with its one-line reason."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from netspec.api import compile_spec, load_spec
from netspec.errors import SpecError
from netspec.importer.api import spec_from_module
from netspec.importer.trace import example_inputs

from . import toy_models as toys


def _round_trip(
    model: torch.nn.Module, inputs: dict[str, tuple[int, ...]], dtypes: dict[str, str] | None = None
) -> str:
    """Import, then check by hand what spec_from_module checks: keys, strict load, outputs."""
    imported = spec_from_module(model, inputs, name="m", dtypes=dtypes)
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)  # the same keys and shapes
    xs = example_inputs(model, inputs, dtypes, 3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = model.eval()(*xs), module.eval()(*xs)
    for a, b in zip(want if isinstance(want, tuple) else [want], got if isinstance(got, tuple) else [got]):
        torch.testing.assert_close(a, b, equal_nan=True)
    return imported.text


def test_toy_round_trips_with_blocks_optional_nodes_and_ops() -> None:
    torch.manual_seed(0)  # the token's init is read from its values
    text = _round_trip(toys.Toy(), {"x": (3, 8, 8)})
    assert f"  Down:  # {toys.__name__}.Down: stages.0, stages.1, stages.2" in text
    assert "params: {out_channels: 16, stride: 1, has_proj: false}" in text  # `stride`: the attribute's name
    assert "when: $has_proj\n        else: x" in text  # the projection only where needed
    assert "- layer2_features: {cat: [x, layer1]}" in text  # DenseNet: the caller concatenates
    assert "- sub_neg: {neg: {}}\n  - sub: {add: 1}" in text  # 1 - x
    assert "- view: {reshape: [26]}" in text  # x.view(x.size(0), -1), per sample
    assert "- token: {Parameter: {shape: [1, 26], init: {normal_: {std: 0.02}}}}" in text
    assert "- scale: {mul: 0.5}" in text  # a stateless module, inline
    assert "outputs: [softmax, getitem_3]" in text


def test_module_list_chain_is_a_repeat_and_keyword_flags_are_dropped() -> None:
    text = _round_trip(toys.Chain(), {"x": (5, 6)})
    assert "- blocks: {Linear: {out_features: 6}}\n    repeat: 3" in text
    assert "- attn: {MultiheadAttention: {num_heads: 2}}\n    from: [tanh, tanh, tanh]" in text


def test_a_residual_loop_over_a_module_list_is_a_group_keeping_the_keys() -> None:
    """``x = x + b(x)``: the items are the group's unnamed nodes (``blocks.0.fc.weight``), the adds
    its named nodes, the last add its value; _round_trip loads the state_dict strictly."""
    model = toys.ResidualStack()
    text = _round_trip(model, {"x": (6,)})
    assert "  - blocks:\n      - Step: {}\n      - Step: {}\n        from: add\n" in text  # the first reads the input
    assert (
        "      - add: {add: [x, '0']}\n      - add_1: {add: [add, '1']}\n      - add_2: {add: [add_1, '2']}\n" in text
    )
    assert "blocks.2.norm.weight" in model.state_dict()  # the keys the strict load checked


def test_a_loop_with_relu_between_the_items_ends_at_the_last_item() -> None:
    text = _round_trip(toys.ReluBetween(), {"x": (5,)})
    assert "      - Linear: {out_features: 8}\n        from: relu\n" in text
    assert "      - relu_1: {relu: {}}\n        from: '1'\n      - out: {Identity: {}}\n        from: '2'\n" in text


@pytest.mark.parametrize("cls", [toys.PreActivation, toys.Interleaved])
def test_a_loop_with_ops_before_or_after_each_item_round_trips(cls: type) -> None:
    shape = (3, 6, 6) if cls is toys.PreActivation else (4,)
    text = _round_trip(cls(), {"x": shape})
    assert "  - blocks:\n      - " in text and "repeat" not in text


def test_two_inputs_and_two_outputs() -> None:
    text = _round_trip(toys.TwoInputs(), {"image": (1, 6, 6), "extra": (3,)})
    assert "inputs:\n  image: [1, 6, 6]\n  extra: [3]\n" in text
    assert "  - cat: [flatten, extra]\n" in text and text.endswith("outputs: [fc, flatten]\n")


def test_a_dict_of_outputs_and_a_gru() -> None:
    text = _round_trip(toys.DictOut(), {"x": (4, 5)})
    assert "  - GRU: {hidden_size: 6, bidirectional: true}\n" in text  # named `gru` by netspec too
    assert text.endswith("outputs: {logits: fc, sequence: getitem}\noutput_type: dict\n")


def test_arguments_with_defaults_are_fixed_at_them() -> None:
    assert "- sigmoid: {}" in _round_trip(toys.WithFlag(), {"x": (4,)})


def test_token_ids_and_a_padding_mask_keep_their_dtypes() -> None:
    torch.manual_seed(0)
    text = _round_trip(toys.Tokens(), {"tokens": (6,), "mask": (6,)}, {"tokens": "int64", "mask": "bool"})
    assert "inputs:\n  tokens: {shape: [6], dtype: int64}\n  mask: {shape: [6], dtype: bool}\n" in text
    assert "from: {query: emb, key: emb, value: emb, key_padding_mask: mask}" in text  # past 3 inputs: by name


def test_token_ids_read_as_floats_fail_with_the_fix() -> None:
    with pytest.raises(SpecError, match=r"check --input-size \(token ids and masks need a dtype: tokens=16:int64"):
        spec_from_module(toys.Tokens(), {"tokens": (6,), "mask": (6,)}, dtypes={"mask": "bool"})


def test_transformer_encoder_is_a_block_of_its_layers_with_the_mask_passed_on() -> None:
    torch.manual_seed(0)
    text = _round_trip(toys.Encoder(), {"tokens": (6,)}, {"tokens": "int64"})
    assert "  TransformerEncoder:  # torch.nn.modules.transformer.TransformerEncoder: enc\n" in text
    assert (
        "      - layers: {TransformerEncoderLayer: {nhead: 2, dim_feedforward: 32, activation: gelu}}\n"
        "        from: {src: src, src_key_padding_mask: src_key_padding_mask}\n        repeat: 2\n"
        "      - norm: {LayerNorm: {}}\n"
    ) in text


def test_in_place_methods_change_what_later_reads_see() -> None:
    text = _round_trip(toys.InPlace(), {"x": (4,)})
    assert "- relu_: {relu: {}}\n  - mul_: {mul: 2.0}\n  - float_1: {to: float32}\n  - add: [float_1, x]" in text


@pytest.mark.parametrize(
    "cls, reason",
    [
        (
            toys.CalledOtherwise,
            (
                "{m}.CalledOtherwise: forward calls `s` again with other arguments than tensors by position, or "
                "other values besides its tensors: a `same_as` node calls the first call's module again on other "
                "tensors only"
            ),
        ),
        (
            toys.UnreadBuffer,
            (
                "{m}.UnreadBuffer: UnreadBuffer holds buffer `steps` (a state_dict key) that forward never "
                "reads: a spec holds a buffer as a node that is used"
            ),
        ),
        (
            toys.Unused,
            (
                "{m}.Unused: `aux` holds weights but forward (in eval mode) never calls it: a spec cannot "
                "hold a module its forward does not use"
            ),
        ),
        (
            toys.Branchy,
            (
                "{m}.Branchy: `if` on a tensor's values in {m}.Branchy.forward at "
                "tests/importer/toy_models.py:{branchy}: a spec's forward cannot depend on its data; "
                "import a model whose forward decides on sizes or arguments only"
            ),
        ),
        (
            toys.BatchAsValue,
            (
                "{m}.BatchAsValue: the batch size (`x.size(0)`) is used as a value where the spec "
                "op takes a number; a spec's sizes are per sample"
            ),
        ),
        (
            toys.Rolled,
            ("{m}.Rolled: `roll` along the batch dim has no spec op (it would mix the samples)"),
        ),
        (
            toys.MaskOnce,
            (
                "{m}.MaskOnce: forward gives `layers.1` other inputs besides the previous item's output than "
                "`layers.0`: a repeat passes the same ones to every copy"
            ),
        ),
    ],
)
def test_what_a_spec_cannot_express_is_one_line_with_the_reason(cls: type, reason: str) -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(cls(), {"x": (3, 4) if cls in (toys.MaskOnce, toys.Positions) else (4,)})
    branchy = inspect.getsourcelines(toys.Branchy.forward)[1] + 1  # the line of its `if`
    assert str(e.value) == reason.format(m=toys.__name__, branchy=branchy)


def test_a_buffer_read_in_forward_is_a_buffer_node_with_its_key() -> None:
    text = _round_trip(toys.WithBuffer(), {"x": (4,)})
    assert "- offset: {Buffer: {shape: [4]}}" in text  # zeros: the default init; the values load


def test_position_ids_from_arange_are_a_buffer_of_the_positions() -> None:
    """``torch.arange(x.size(1))``: the size is folded at the declared input size, as reshapes' are."""
    text = _round_trip(toys.Positions(), {"x": (3, 4)})
    assert "- arange: {Buffer: {value: [0, 1, 2], persistent: false}}" in text


def test_a_transformer_encoder_on_nested_tensors_is_refused_with_the_fix() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(toys.Encoder(nested=True), {"tokens": (6,)}, dtypes={"tokens": "int64"})
    assert str(e.value) == (
        f"{toys.__name__}.Encoder: enc: nn.TransformerEncoder with a padding mask runs as nested "
        "tensors in eval mode, which zeroes the padded positions, and no spec node does that; "
        "build it with enable_nested_tensor=False"
    )


def test_a_sequential_model_is_refused() -> None:
    with pytest.raises(SpecError, match="a spec's top-level nodes need names"):
        spec_from_module(torch.nn.Sequential(torch.nn.Linear(4, 2)), {"x": (4,)})


def test_children_named_with_a_dash_keep_their_keys() -> None:
    """RegNet's stages name their blocks `block1-0`: the nodes keep those names (PyTorch's keys)."""

    class Stage(nn.Sequential):
        def __init__(self) -> None:
            super().__init__()
            self.add_module("block1-0", nn.Linear(4, 4))
            self.add_module("block1-1", nn.Linear(4, 4))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stage = Stage()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.stage(x))

    model = Net().eval()
    imported = spec_from_module(model, {"x": (4,)}, name="net")
    assert "- block1-0: {Linear: {out_features: 4}}" in imported.text
    module = compile_spec(load_spec(text=imported.text)).module
    module.load_state_dict(model.state_dict(), strict=True)
    assert "stage.block1-1.weight" in module.state_dict()
    x = torch.randn(3, 4)
    torch.testing.assert_close(module(x), model(x))


def test_a_model_that_draws_noise_is_checked_with_both_forwards_seeded_alike() -> None:
    imported = spec_from_module(toys.VAE(), {"x": (8,)}, name="vae")
    assert "randn_like" in imported.text and imported.checked.max_diff == 0.0


def test_heads_called_only_in_training_become_training_only_nodes_equal_in_both_modes() -> None:
    torch.manual_seed(0)
    model = toys.AuxHeads()
    text = _round_trip(model, {"x": (6,)})  # eval mode: the main output alone
    assert "  - aux: {AuxHead: {}}\n    training_only: true\n" in text
    assert "  - aux_fc: {Linear: {out_features: 2}}\n    from: relu\n    training_only: true\n" in text
    assert text.endswith("outputs: [fc, aux_fc, aux]\n")
    module = compile_spec(load_spec(text=text)).module
    module.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(4, 6)
    torch.manual_seed(2)
    want = model.train()(x)
    torch.manual_seed(2)  # the same dropout draws (aux's F.dropout, then drop), in the same order
    got = module.train()(x)
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_inputs_named_type_meta_code_and_graph_keep_their_names() -> None:
    text = _round_trip(toys.OddInputNames(), {"type": (4,), "meta": (2,), "code": (3,), "graph": (3,)})
    assert "inputs:\n  type: [4]\n  meta: [2]\n  code: [3]\n  graph: [3]\n" in text


def test_unbind_split_and_a_reshaped_parameter_become_select_narrow_and_unsqueeze() -> None:
    text = _round_trip(toys.Unbound(), {"x": (5, 4)})
    assert "select:" in text and "narrow:" in text and "unsqueeze:" in text


@pytest.mark.parametrize(
    "cls, inputs, reason",
    [
        (
            toys.DictInputs,
            {"batch": (4,)},
            "forward argument `batch` is a dict (forward reads `batch['image']`): a spec's inputs are tensors, "
            "one per name; import a module whose forward takes each tensor of `batch` as its own argument",
        ),
        (
            toys.TupleHidden,
            {"x": (5, 4), "hidden": (1, 3)},
            "forward argument `hidden` is the hidden state of LSTM `lstm`, the tuple (h0, c0): a spec's inputs are "
            "tensors, one per name; import a module whose forward takes h0 and c0 (a spec writes "
            "`from: {input: x, hx: [h0, c0]}`)",
        ),
        (
            toys.ParamList,
            {"x": (4,)},
            "forward reads `scales.0`, an item of nn.ParameterList `scales`: a spec's `Parameter` node is a "
            "parameter of its own (the key `scales.0` would need a node named `0` inside a node `scales`); make "
            "each a parameter of the module (self.w0 = nn.Parameter(...))",
        ),
    ],
)
def test_inputs_that_are_no_tensors_and_parameter_lists_are_refused_in_one_line(
    cls: type, inputs: dict[str, tuple[int, ...]], reason: str
) -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(cls(), inputs)
    assert str(e.value) == f"{toys.__name__}.{cls.__name__}: {reason}"


def test_a_class_used_in_a_block_and_after_it_is_made_a_block_first() -> None:
    """The block of `LayerNorm` is made before the block of `Layer`, which uses it, though the model
    uses `LayerNorm` again after `Layer` (torch's LayerNorm and timm's of the same name were mixed up)."""
    text = _round_trip(toys.NormAfterBlocks(), {"x": (4,)})
    assert text.count("{LayerNormBlock: {}}") == 2


def test_scaled_dot_product_attention_is_the_attention_op() -> None:
    assert "attention: {scale: 0.3}" in _round_trip(toys.Attending(), {"x": (5, 8)})


def test_children_named_like_node_keys_are_written_in_the_explicit_form() -> None:
    text = _round_trip(toys.NamedLikeKeys(), {"x": (4,)})
    assert "- name: when\n    op: Linear" in text and "- name: repeat\n    op: Sequential" in text


def test_windows_folded_into_the_batch_are_a_reshape_that_writes_it() -> None:
    """Swin's window_partition / window_reverse, and LeViT's norm over the rows of a flatten
    from the batch, reshaped back with `reshape_as`."""
    text = _round_trip(toys.Windows(), {"x": (8, 8, 16)})
    assert "- reshape: [4B, 16, 16]" in text  # (B, 2, 2, 4, 4, 16) -> (4B, 16, 16): windows into samples
    assert "- view_1: {reshape: [B, 2, 2, 4, 4, 16]}" in text  # and back
    assert "- flatten: {start_dim: 0, end_dim: 2}\n  - rows: {BatchNorm1d: {}}" in text  # (64B, 16) rows
    assert "- reshape_as: {reshape: [B, 8, 8, 16]}" in text


@pytest.mark.parametrize(
    ("inputs", "dtypes", "reason"),
    [
        ({"picture": (1, 6, 6)}, None, "`inputs` names `picture`, which forward does not take (it takes image, extra)"),
        ({"image": (8,)}, None, "forward's argument `extra` has no default and no shape in `inputs`"),
        ({"image": "8", "extra": (8,)}, None, "input `image`: '8' is not a sample shape"),
        ({"image": (8, 0), "extra": (8,)}, None, "input `image`: (8, 0) is not a sample shape"),
        ({}, None, "`inputs` is {}, not a dict of sample shapes by name"),
        (
            {"image": (8,), "extra": (8,)},
            {"y": "int64"},
            "`dtypes` names `y`, which is not one of the inputs (image, extra)",
        ),
        (
            {"image": (8,), "extra": (8,)},
            {"image": "long"},
            "`dtypes`: input `image`'s dtype `long` is not one of float32",
        ),
    ],
)
def test_inputs_that_do_not_fit_forward_are_one_line_naming_forwards_arguments(
    inputs: dict, dtypes: dict | None, reason: str
) -> None:
    with pytest.raises(SpecError) as err:
        spec_from_module(toys.TwoInputs(), inputs, name="m", dtypes=dtypes)
    line = str(err.value)
    assert "\n" not in line and "importer bug" not in line
    assert line.startswith(f"{toys.__name__}.TwoInputs: {reason}"), line


def test_inputs_given_out_of_forwards_order_are_declared_in_it() -> None:
    model = toys.TwoInputs()
    text = spec_from_module(model, {"extra": (3,), "image": (1, 6, 6)}, name="m").text
    assert "inputs:\n  image: [1, 6, 6]\n  extra: [3]\n" in text  # the compiled module's arguments, in forward's order
    assert text == _round_trip(model, {"image": (1, 6, 6), "extra": (3,)})


@pytest.mark.parametrize(
    ("child", "reason"),
    [
        ("lambda", "`lambda`: `lambda` is a Python keyword, and a spec's node names are Python attributes"),
        ("graph", "`graph`: `graph` is an attribute every compiled module has"),
        ("x", "child `x` has the name of forward's argument `x`, and a spec's inputs and nodes share one namespace"),
    ],
)
def test_children_a_spec_cannot_name_are_refused_before_a_spec_is_written(child: str, reason: str) -> None:
    class Net(nn.Module):  # forward's own module: named children, one argument `x`
        def __init__(self) -> None:
            super().__init__()
            self.add_module(child, nn.Linear(4, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.get_submodule(child)(x).relu()

    with pytest.raises(SpecError) as err:
        spec_from_module(Net(), {"x": (4,)}, name="m")
    assert f".Net: {reason}" in str(err.value), str(err.value)
    assert "importer bug" not in str(err.value) and "\n" not in str(err.value)
