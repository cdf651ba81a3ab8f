"""The round trip, checked: the written spec compiles, takes the model's state_dict with strict
loading, and gives the same outputs on the same random input in eval mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SpecError
from .errors import ImportFailed
from .trace import example_inputs

RTOL, ATOL = 1e-5, 1e-5  # float32, the same ops in the same order: differences are rounding only


@dataclass
class Checked:
    """What the check found: how many tensors loaded, and the largest difference of the outputs."""

    tensors: int
    max_diff: float
    compile_table: str = ""

    def __str__(self) -> str:
        return (
            f"round trip checked: the spec loads the model's state_dict strictly ({self.tensors} tensors) and "
            f"gives the same outputs (max |difference| {self.max_diff:.1e})"
        )


def _flat(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flat(v)]
    return []


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest |a - b|, counting NaN in both as equal (a fully masked row of attention).

    >>> _max_difference(torch.tensor([1.0, float("nan")]), torch.tensor([1.5, float("nan")]))
    0.5
    """
    a, b = a.double(), b.double()
    return float(torch.where(a.isnan() & b.isnan(), 0.0, a - b).abs().max())


def check_round_trip(
    text: str, model: nn.Module, inputs: dict[str, tuple[int, ...]], seed: int = 0, dtypes: dict[str, str] | None = None
) -> Checked:
    """Compile ``text``, load ``model``'s weights into it strictly, compare outputs on batch 2.

    >>> text = "name: m\\ninputs: {x: [4]}\\nnodes:\\n  - fc: {Linear: {out_features: 2}}\\n"
    >>> check_round_trip(text, torch.nn.Sequential(), {"x": (4,)})
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: the written spec does not take the model's state_dict: Error(s) in loading state_dict for M: Missing key(s) in state_dict: "fc.weight", "fc.bias".
    """
    from ..api import compile_spec, load_spec

    try:
        compiled = compile_spec(load_spec(text=text))
    except SpecError as e:
        raise ImportFailed(f"the written spec does not compile (an importer bug): {e}") from None
    module = compiled.module
    state = model.state_dict()
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        reason = " ".join(str(e).split())
        raise ImportFailed(f"the written spec does not take the model's state_dict: {reason[:400]}") from None
    module.eval()
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    xs = example_inputs(model, inputs, dtypes, 2, generator)
    # both seeded alike: a model that draws noise (a VAE's randn_like) draws the same in both
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        want = _flat(model(*xs))
        torch.manual_seed(seed)
        got = _flat(module(*xs))
    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        raise ImportFailed(
            f"the spec's outputs are {[tuple(t.shape) for t in got]}, the model's {[tuple(t.shape) for t in want]}"
        )
    diff = max((_max_difference(a, b) for a, b in zip(want, got) if a.numel()), default=0.0)
    if not all(torch.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True) for a, b in zip(want, got)):
        raise ImportFailed(f"the spec's outputs differ from the model's by up to {diff:.3g}")
    return Checked(len(state), diff)
