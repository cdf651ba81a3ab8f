"""``torch.nn.functional`` calls a parameterless torch.nn layer makes: written as that layer.

``F.adaptive_avg_pool2d(x, 1)`` is ``AdaptiveAvgPool2d: {output_size: 1}`` in a spec, ``F.dropout(x,
0.2, self.training)`` is ``Dropout: {p: 0.2}`` (which follows the module's train/eval mode, as
the call did), ``F.relu6(x)`` is ``ReLU6``. The layers hold no state, so state_dict keys do not
change. Signatures are torch's (several of these functions are builtins without one).
"""

from __future__ import annotations

from typing import Any

from .call import Call, Result
from .functions import handles
from .ir import Ref


@handles("F.relu6")
def _relu6(c: Call, input: Ref, inplace: bool = False) -> Result:
    return c.layer("ReLU6", [input], {})


@handles("F.gelu")
def _gelu(c: Call, input: Ref, approximate: str = "none") -> Result:
    return c.layer("GELU", [input], {"approximate": approximate})


@handles("F.silu", "F.hardswish", "F.hardsigmoid", "F.mish")
def _plain_activation(c: Call, input: Ref, inplace: bool = False) -> Result:
    layer = {"silu": "SiLU", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "mish": "Mish"}
    return c.layer(layer[c.key.split(".")[-1]], [input], {})


@handles("F.leaky_relu")
def _leaky_relu(c: Call, input: Ref, negative_slope: float = 0.01, inplace: bool = False) -> Result:
    return c.layer("LeakyReLU", [input], {"negative_slope": negative_slope})


@handles("F.elu")
def _elu(c: Call, input: Ref, alpha: float = 1.0, inplace: bool = False) -> Result:
    return c.layer("ELU", [input], {"alpha": alpha})


@handles("F.hardtanh")
def _hardtanh(c: Call, input: Ref, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Result:
    return c.layer("Hardtanh", [input], {"min_val": min_val, "max_val": max_val})


@handles("F.softplus")
def _softplus(c: Call, input: Ref, beta: float = 1.0, threshold: float = 20.0) -> Result:
    return c.layer("Softplus", [input], {"beta": beta, "threshold": threshold})


@handles("F.dropout", "F.dropout1d", "F.dropout2d", "F.dropout3d", "F.alpha_dropout")
def _dropout(c: Call, input: Ref, p: float = 0.5, training: bool = True, inplace: bool = False) -> Result:
    layer = {
        "dropout": "Dropout",
        "dropout1d": "Dropout1d",
        "dropout2d": "Dropout2d",
        "dropout3d": "Dropout3d",
        "alpha_dropout": "AlphaDropout",
    }
    return c.layer(layer[c.key.split(".")[-1]], [input], {"p": p})


def _pool(kind: str, n: int) -> None:
    layer = f"{kind.capitalize()}Pool{n}d"

    def adaptive(c: Call, input: Ref, output_size: Any, return_indices: bool = False) -> Result:
        args = {"output_size": output_size} | ({"return_indices": True} if return_indices else {})
        return c.layer(f"Adaptive{layer}", [input], args)

    def max_pool(
        c: Call,
        input: Ref,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> Result:
        return c.layer(
            layer,
            [input],
            {
                "kernel_size": kernel_size,
                "stride": stride,
                "padding": padding,
                "dilation": dilation,
                "ceil_mode": ceil_mode,
                "return_indices": return_indices,
            },
        )

    def avg_pool(
        c: Call,
        input: Ref,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Any = None,
    ) -> Result:
        args = {
            "kernel_size": kernel_size,
            "stride": stride,
            "padding": padding,
            "ceil_mode": ceil_mode,
            "count_include_pad": count_include_pad,
        }
        if n > 1:
            args["divisor_override"] = divisor_override
        return c.layer(layer, [input], args)

    handles(f"F.adaptive_{kind}_pool{n}d")(adaptive)
    handles(f"F.{kind}_pool{n}d", f"torch.{kind}_pool{n}d")(max_pool if kind == "max" else avg_pool)


for _kind in ("max", "avg"):
    for _n in (1, 2, 3):
        _pool(_kind, _n)


@handles("torchvision.ops.stochastic_depth.stochastic_depth")
def _stochastic_depth(c: Call, input: Ref, p: float, mode: str, training: bool = True) -> Result:
    """The identity in eval mode: left out, and said so (the spec trains without it)."""
    c.note("stochastic depth left out: it is the identity in eval mode, so the spec trains without it")
    return input


@handles("F.unfold")
def _im2col(c: Call, input: Ref, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Result:
    """``F.unfold(x, 3, padding=1)``: each sliding block's values as a column (im2col), nn.Unfold."""
    return c.layer(
        "Unfold", [input], {"kernel_size": kernel_size, "dilation": dilation, "padding": padding, "stride": stride}
    )


@handles("F.fold")
def _col2im(
    c: Call, input: Ref, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> Result:
    """``F.fold(x, (14, 14), 3, padding=1)``: columns summed back into an image (col2im, VOLO's
    outlook attention), nn.Fold."""
    args = {"output_size": output_size, "kernel_size": kernel_size, "dilation": dilation}
    return c.layer("Fold", [input], args | {"padding": padding, "stride": stride})
