"""``Buffer`` nodes (issue 20): tensors that are not learnt, compared with the modules that
``register_buffer`` them by hand, with the same weights loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import netspec
from netspec.errors import SpecError

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Normalized(nn.Module):
    """A classifier that normalises its images with constant buffers (torchvision's habit)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(3, 1, 1), persistent=False)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


NORMALIZED = f"""name: normalized
inputs: {{image: [3, 8, 8]}}
nodes:
  - mean: {{Buffer: {{value: {MEAN}, shape: [3, 1, 1]}}}}
  - std: {{Buffer: {{value: {STD}, shape: [3, 1, 1], persistent: false}}}}
  - centered: {{sub: [image, mean]}}
  - scaled: {{div: [centered, std]}}
  - conv: {{Conv2d: {{out_channels: 4, kernel_size: 3}}}}
  - relu: ReLU
  - flatten: {{}}
  - fc: {{Linear: {{out_features: 2}}}}
"""


def _build(text: str, base_dir: Path | None = None) -> nn.Module:
    """The model of a spec text; with ``base_dir``, of a spec file there (files are read beside it)."""
    if base_dir is None:
        return netspec.build_model(netspec.load_spec(text=text))
    (base_dir / "spec.yaml").write_text(text)
    return netspec.build_model(base_dir / "spec.yaml")


def test_normalisation_constants_equal_the_hand_written_module() -> None:
    torch.manual_seed(0)
    reference = Normalized()
    model = _build(NORMALIZED)
    assert list(model.state_dict()) == list(reference.state_dict())  # std is not persistent, as torch has it
    model.load_state_dict(reference.state_dict())
    image = torch.rand(5, 3, 8, 8)
    assert_close(model(image), reference(image))
    assert dict(model.named_buffers()).keys() == {"mean", "std"}
    assert not any(p is b for p in model.parameters() for b in model.buffers())  # not learnt


def test_a_buffer_moves_with_the_module_and_is_not_a_parameter() -> None:
    model = _build(NORMALIZED).double()
    assert model.mean.dtype == torch.float64
    assert sum(p.numel() for p in model.parameters()) == 4 * 3 * 9 + 4 + 144 * 2 + 2


class PositionalTable(nn.Module):
    """pytorch/examples' word language model keeps `pe` as a buffer and cuts it to the length."""

    def __init__(self, pe: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.size(1)]


def test_a_table_from_a_file_is_cut_to_the_sequence_length_at_run_time(tmp_path: Path) -> None:
    pe = torch.randn(1, 50, 8)
    torch.save({"pe": pe, "other": torch.zeros(1)}, tmp_path / "tables.pt")
    model = _build(
        "name: t\ninputs: {x: [5, 8]}\nnodes:\n"
        "  - pe: {Buffer: {file: tables.pt, key: pe, persistent: false}}\n"
        '  - pos: {index: "[:, :x.size(1)]", from: pe}\n'
        "  - out: {add: [x, pos]}\n",
        base_dir=tmp_path,
    )
    reference = PositionalTable(pe)
    assert list(model.state_dict()) == list(reference.state_dict()) == []
    for length in (5, 9):  # compiled at 5, run at another length too
        x = torch.randn(2, length, 8)
        assert_close(model(x), reference(x))


def test_a_shape_and_init_draws_from_the_seed_when_built() -> None:
    text = "name: t\ninputs: {x: [4]}\nnodes:\n  - b: {Buffer: {shape: [4], init: normal_}}\n  - out: {add: [x, b]}\n"
    torch.manual_seed(3)
    first = _build(text).b
    torch.manual_seed(3)
    assert_close(_build(text).b, first)
    short = _build("name: t\ninputs: {x: [2]}\nnodes:\n  - b: {Buffer: [1.5, 2]}\n  - add: [x, b]\n")
    assert_close(short.b, torch.tensor([1.5, 2.0]))  # a list alone is the value


def test_integer_values_make_an_index_buffer() -> None:
    """Swin's relative_position_index: an int64 buffer indexing a learnt table."""
    model = _build(
        "name: t\ninputs: {x: [3]}\nnodes:\n"
        "  - table: {Parameter: {shape: [5, 3]}}\n"
        "  - rel: {Buffer: {value: [[0, 1], [4, 2]]}}\n"
        '  - bias: {index: "[rel]", from: table}\n'
        '  - first: {index: "[:, 0]", from: x}\n'
        "outputs: [bias, first]\n"
    )
    assert model.rel.dtype == torch.int64
    bias, _ = model(torch.zeros(2, 3))
    assert_close(bias, model.table[torch.tensor([[0, 1], [4, 2]])])


@pytest.mark.parametrize(
    "args,message",
    [
        ("{value: [1, 2], file: a.pt}", "one of `value`, `file` or `shape`"),
        ("{value: [[1, 2], [3]]}", "rectangular list of numbers"),
        ("{value: [1, 2, 3], shape: [2, 2]}", "holds 4 values"),
        ("{shape: [2], init: {normal_: {sdt: 1}}}", "sdt"),
        ("{shape: [2], dtype: float31}", "dtype"),
        ("{file: ../../etc/passwd}", "outside the folders"),
        ("{valeu: [1]}", "did you mean `value`"),
        (
            "{shape: [4, 16, 16], init: {shifted_window_mask_: {size: [10, 8], window: [4, 4], shift: [2, 2]}}}",
            "a 10x8 map is no whole number of 4x4 windows",
        ),
        ("{shape: [4, 4], init: {attention_bias_index_: {resolution: [3, 3]}}, dtype: int64}", "makes 81 numbers"),
    ],
)
def test_a_bad_buffer_is_one_line_at_its_argument(args: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _build(f"name: t\ninputs: {{x: [2]}}\nnodes:\n  - b: {{Buffer: {args}}}\n  - add: [x, b]\n")
    text = str(info.value)
    assert message in text and "\n" not in text and "nodes[0].Buffer" in text, text


def test_an_ejected_file_writes_a_small_non_persistent_buffer_and_refuses_a_big_one() -> None:
    from netspec.api import compile_spec
    from netspec.interop import ExportError
    from netspec.interop.eject import eject

    source = eject(compile_spec(netspec.load_spec(text=NORMALIZED)))
    assert (
        "self.register_buffer('std', torch.tensor([[[0.229]], [[0.224]], [[0.225]]], dtype=torch.float32), persistent=False)"
        in source
    )
    assert "self.register_buffer('mean', torch.zeros(3, 1, 1, dtype=torch.float32))" in source
    big = "name: t\ninputs: {x: [65, 64]}\nnodes:\n  - b: {Buffer: {shape: [65, 64], init: normal_, persistent: false}}\n  - add: [x, b]\n"
    with pytest.raises(ExportError, match="make it persistent"):
        eject(compile_spec(netspec.load_spec(text=big)))
