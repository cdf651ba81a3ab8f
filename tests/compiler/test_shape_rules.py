"""Every shape rule and argument check against the real forward it stands in for.

For every registered rule: over a grid of constructor arguments and input shapes (including
wrong ranks, wrong channels, inputs smaller than the kernel, and every argument value torch
refuses: a stride, dilation or kernel below one, a negative padding, an output padding too
large), the rule either declines (None) or gives exactly the shape a CPU forward computes;
wherever the CPU forward refuses, the rule declines and the meta run netspec falls back on
refuses too (so `validate` never passes what `run` refuses), unless the argument check
already refused; and the argument check refuses only what the CPU forward refuses for every
input. A rule must answer somewhere, or it would pass by never answering. The op rules
(``OpType.shape``) get the same treatment.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from netspec.compiler.dims import input_probe
from netspec.compiler.shape_rules import SHAPE_RULES, Refusal, argument_refusal, output_shape, probe_by_rule
from netspec.errors import ShapeError
from netspec.nodes.ops import OPS

Shape = tuple[int, ...]


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _with_refused(grid: list[dict[str, Any]], **refused: list[Any]) -> list[dict[str, Any]]:
    """``grid`` plus, for a sample of it, each refused value put in its argument's place."""
    sample = grid[:: max(1, len(grid) // 48)]
    return grid + [{**kw, arg: value} for arg, values in refused.items() for value in values for kw in sample]


def _spatial_inputs(n: int, channels: int) -> list[Shape]:
    sizes = [(s,) * n for s in (1, 2, 5, 8)] + [tuple(range(4, 4 + n))]
    return [(2, channels, *s) for s in sizes] + [
        (2, channels + 1, *sizes[2]),
        (channels, *sizes[3]),
        (2, channels, *sizes[2], 3),
        (2, channels, *sizes[2][:-1], 0),
    ]


def _conv_cases(n: int) -> tuple[list[dict[str, Any]], list[Shape]]:
    kwargs = _grid(
        in_channels=[4],
        out_channels=[6],
        kernel_size=[1, 3, tuple(range(2, 2 + n))],
        stride=[1, 2],
        padding=[0, 1, 2, "same", "valid", tuple(range(n))],
        dilation=[1, 2],
        groups=[1, 2],
        padding_mode=["zeros", "reflect"],
    )
    return _with_refused(
        kwargs,
        kernel_size=[0, (1,) * (n - 1) + (0,)],
        stride=[0, -1, (1,) * (n - 1) + (0,), 1.0, 0.0],
        padding=[-1, (0,) * (n - 1) + (-2,)],
        dilation=[0, -1],
    ), _spatial_inputs(n, 4)


def _conv_transpose_cases(n: int) -> tuple[list[dict[str, Any]], list[Shape]]:
    kwargs = _grid(
        in_channels=[4],
        out_channels=[6],
        kernel_size=[1, 2, 3],
        stride=[1, 2, 3],
        padding=[0, 1, 3],
        output_padding=[0, 1, 2],
        dilation=[1, 2],
        groups=[1, 2],
    )
    return _with_refused(
        kwargs, kernel_size=[0], stride=[0, -1], padding=[-1], dilation=[0, -1], output_padding=[-1, 3]
    ), _spatial_inputs(n, 4)


def _pool_cases(n: int, max_pool: bool) -> tuple[list[dict[str, Any]], list[Shape]]:
    extra = {"dilation": [1, 2], "return_indices": [False, True]} if max_pool else {"count_include_pad": [True]}
    kwargs = _grid(
        kernel_size=[1, 2, 3, tuple(range(2, 2 + n))],
        stride=[None, 1, 2],
        padding=[0, 1, 2],
        ceil_mode=[False, True],
        **extra,
    )
    refused: dict[str, list[Any]] = {"kernel_size": [0, -1], "stride": [0, -1, 1.0], "padding": [-1, 3, 1.0]}
    if max_pool:
        refused["dilation"] = [0, -1]
    return _with_refused(kwargs, **refused), _spatial_inputs(n, 3)


def _batch_norm_cases(n: int) -> tuple[list[dict[str, Any]], list[Shape]]:
    shapes = [(2, 4), (2, 4, 5), (2, 4, 5, 5), (2, 4, 5, 5, 5), (2, 3, 5, 5), (2, 4, 0, 5)][: n + 4]
    return _grid(num_features=[4], affine=[True, False]), shapes


_ANY_SHAPE = [(2,), (2, 4), (2, 4, 5), (2, 3, 4, 5), (2, 0, 3)]

#: rule class -> (constructor arguments to try, input shapes to try)
CASES: dict[type[nn.Module], tuple[list[dict[str, Any]], list[Shape]]] = {
    nn.Linear: (
        _grid(in_features=[4], out_features=[3], bias=[True, False]),
        [(2, 4), (2, 5, 4), (2, 3), (4,), (2, 4, 3)],
    ),
    **{cls: _conv_cases(n) for n, cls in enumerate((nn.Conv1d, nn.Conv2d, nn.Conv3d), 1)},
    **{
        cls: _conv_transpose_cases(n)
        for n, cls in enumerate((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), 1)
    },
    **{cls: _pool_cases(n, True) for n, cls in enumerate((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), 1)},
    **{cls: _pool_cases(n, False) for n, cls in enumerate((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), 1)},
    **{cls: _batch_norm_cases(n) for n, cls in enumerate((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), 1)},
    **{
        cls: ([{}], _ANY_SHAPE)
        for cls in (
            nn.ReLU,
            nn.ReLU6,
            nn.SELU,
            nn.SiLU,
            nn.Mish,
            nn.Sigmoid,
            nn.Tanh,
            nn.Hardswish,
            nn.Hardsigmoid,
            nn.Hardshrink,
            nn.Softshrink,
            nn.Tanhshrink,
            nn.Softsign,
            nn.Softplus,
            nn.LogSigmoid,
            nn.Identity,
            nn.AlphaDropout,
        )
    },
    nn.LeakyReLU: (_grid(negative_slope=[0.2], inplace=[False, True]), _ANY_SHAPE),
    nn.ELU: (_grid(alpha=[0.5]), _ANY_SHAPE),
    nn.CELU: (_grid(alpha=[0.5]), _ANY_SHAPE),
    nn.Hardtanh: (_grid(min_val=[-2.0], max_val=[2.0]), _ANY_SHAPE),
    nn.Threshold: (_grid(threshold=[0.1], value=[20.0]), _ANY_SHAPE),
    nn.Dropout: (_grid(p=[0.0, 0.5]), _ANY_SHAPE),
    nn.GELU: (_grid(approximate=["none", "tanh", "bad"]), _ANY_SHAPE),
    **{cls: (_grid(dim=[None, 0, 1, 2, -1, -3]), _ANY_SHAPE) for cls in (nn.Softmax, nn.LogSoftmax, nn.Softmin)},
    nn.PReLU: (_grid(num_parameters=[1, 4]), _ANY_SHAPE),
}


def _build(cls: type[nn.Module], kwargs: dict[str, Any]) -> nn.Module | None:
    try:
        return cls(**kwargs).eval()
    except (ValueError, TypeError, RuntimeError, AssertionError):
        return None  # arguments the class itself refuses: no shape to check


def _torch_shape(module: nn.Module, shape: Shape, device: str) -> Shape | None:
    """The output shape of a forward on ``device`` (cpu, or meta: what netspec falls back on),
    or None where torch refuses the input."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            layer = module if device == "cpu" else copy.deepcopy(module).to(device)
            out = layer(torch.zeros(shape, device=device))
    except Exception:
        return None
    return tuple(out.shape) if isinstance(out, torch.Tensor) else ("not a tensor",)


def _checks(cls: type[nn.Module]) -> Iterator[tuple[str, nn.Module, Shape]]:
    kwargs_list, shapes = CASES[cls]
    for kwargs in kwargs_list:
        module = _build(cls, kwargs)
        if module is not None:
            for shape in shapes:
                yield f"{cls.__name__}({kwargs}) on {shape}", module, shape


def _stricter_than_torch(module: nn.Module, arg: str) -> bool:
    """The one refusal netspec makes where torch sometimes accepts: dilation 0 on a transposed
    convolution (taken where the kernel has size 1 on some ranks, refused elsewhere)."""
    return isinstance(module, nn.modules.conv._ConvTransposeNd) and arg == "dilation" and min(module.dilation) == 0


def test_every_rule_has_cases() -> None:
    assert {SHAPE_RULES[name].cls for name in SHAPE_RULES} == set(CASES)


@pytest.mark.parametrize("name", sorted(SHAPE_RULES))
def test_rule_agrees_with_torch(name: str) -> None:
    answered = refused = 0
    for case, module, shape in _checks(SHAPE_RULES[name].cls):
        ours, cpu = output_shape(module, shape), _torch_shape(module, shape, "cpu")
        refusal = argument_refusal(module)
        if refusal is not None:  # refused for any input: the CPU forward must refuse this one too
            refused += 1
            assert cpu is None or _stricter_than_torch(module, refusal.arg), (
                f"{case}: refused ({refusal.message}) but torch gives {cpu}"
            )
        if isinstance(ours, Refusal):  # refused for this input: the CPU forward must refuse it too
            refused += 1
            assert cpu is None, f"{case}: rule refuses ({ours.message}) but torch gives {cpu}"
        elif ours is not None:
            answered += 1
            assert ours == cpu, f"{case}: rule {ours}, torch {cpu}"
        elif cpu is None and refusal is None:  # the meta run decides: it must refuse what the CPU refuses
            assert _torch_shape(module, shape, "meta") is None, f"{case}: the CPU refuses, the meta run does not"
    assert answered, f"the {name} rule never answered: it saves nothing"
    if SHAPE_RULES[name].check is not None:
        assert refused, f"the {name} check never refused: its grid has no refused argument"


def test_a_refused_input_is_a_shape_error_naming_it() -> None:
    with pytest.raises(ShapeError, match="cannot take input 3x8x8: expected input with 4 channels, got 3"):
        probe_by_rule(nn.ConvTranspose2d(4, 2, 2), [input_probe((3, 8, 8), torch.float32)], {})


def test_a_rule_declines_custom_classes_of_the_same_name() -> None:
    class Conv2d(nn.Module):  # a user's module named like torch's
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1]

    assert output_shape(Conv2d(), (2, 4, 8, 8)) is None


def test_probe_by_rule_declines_mixed_dtypes_and_integers() -> None:
    layer = nn.Conv2d(3, 4, 3)
    assert probe_by_rule(layer, [input_probe((3, 8, 8), torch.float64)], {}) is None  # weights are float32
    assert probe_by_rule(nn.ReLU(), [input_probe((3,), torch.int64)], {}) is None
    out = probe_by_rule(layer, [input_probe((3, 8, 8), torch.float32)], {})
    assert out is not None and tuple(out.value.shape) == (2, 4, 6, 6) and tuple(out.twin.shape) == (3, 4, 6, 6)


# ---- op rules ------------------------------------------------------------------------------

OP_CASES: dict[str, list[tuple[list[Shape], dict[str, Any]]]] = {
    "cat": [
        ([a, b], kw)
        for a, b in [((2, 3, 4), (2, 5, 4)), ((2, 3, 4), (2, 3, 5)), ((2, 3), (2, 3, 1)), ((2, 3, 4), (2, 3, 4))]
        for kw in ({}, {"dim": 2}, {"dim": -1}, {"dim": 3}, {"dim": -4})
    ],
    "pad_to": [
        ([a, b], {})
        for a, b in [
            ((2, 3, 4, 4), (2, 5, 6, 7)),
            ((2, 3, 6, 6), (2, 3, 4, 5)),
            ((2, 3, 4), (2, 3, 4, 5)),
            ((2, 3), (2, 4)),
            ((2, 3, 4, 4), (2, 3, 0, 4)),
        ]
    ],
}


def test_every_op_rule_has_cases() -> None:
    assert {name for name, entry in OPS.items() if entry.shape is not None} == set(OP_CASES)


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_rule_agrees_with_the_meta_run(name: str) -> None:
    entry = OPS[name]
    assert entry.shape is not None
    answered = 0
    for shapes, kwargs in OP_CASES[name]:
        ins = [torch.empty(s, device="meta") for s in shapes]
        fn, args, fkw = entry.emit(ins, **kwargs)
        try:
            theirs: Shape | None = tuple(fn(*args, **fkw).shape)
        except Exception:
            theirs = None
        ours = entry.shape(shapes, **kwargs)
        if ours is not None:
            answered += 1
            assert ours == theirs, f"{name}{shapes} {kwargs}: rule {ours}, torch {theirs}"
    assert answered
