"""The round trip, checked: the written spec compiles, takes the model's state_dict with strict
loading, and gives the same outputs on the same random input in eval mode."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    fixed_by: str | None = None  # why the spec is right at the traced input sizes only

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


def other_size(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The second input size the round trip compares at: every dim but the channels (the first of
    two or more) changed, kept a multiple of 32 where it was one (a network's total stride).

    >>> other_size((3, 224, 224)), other_size((16,)), other_size((3, 9, 10)), other_size(())
    ((3, 256, 256), (32,), (3, 18, 20), ())
    """
    changed = [d * 2 if d < 64 else d + 32 for d in shape]
    return tuple(shape[:1]) + tuple(changed[1:]) if len(shape) > 1 else tuple(changed)


def check_round_trip(
    text: str,
    model: nn.Module,
    inputs: dict[str, tuple[int, ...]],
    seed: int = 0,
    dtypes: dict[str, str] | None = None,
    pinned: bool = False,
    files: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Checked:
    """Compile ``text``, load ``model``'s weights into it strictly, compare outputs on batch 2.
    ``files`` are the tensor files the spec reads (file name -> its tensors), written beside it.

    Unless the spec is ``pinned`` to its input sizes, compare again at batch 3 and
    :func:`other_size` where the model itself takes that size; where the spec is wrong there (a
    size the forward computes became a number), ``fixed_by`` says so: the spec is then pinned.

    >>> text = "name: m\\ninputs: {x: [4]}\\nnodes:\\n  - fc: {Linear: {out_features: 2}}\\n"
    >>> check_round_trip(text, torch.nn.Sequential(), {"x": (4,)})
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: the written spec does not take the model's state_dict: Error(s) in loading state_dict for M: Missing key(s) in state_dict: "fc.weight", "fc.bias".
    """
    with _beside(text, files or {}) as load:
        return _check(load, model, inputs, seed, dtypes, pinned)


@contextlib.contextmanager
def _beside(text: str, files: dict[str, dict[str, torch.Tensor]]) -> Iterator[Callable[..., Any]]:
    """``load_spec`` of ``text``; with ``files``, of the spec written in a temporary folder beside them."""
    from ..api import load_spec

    if not files:
        yield lambda **kw: load_spec(text=text, **kw)
        return
    with tempfile.TemporaryDirectory() as folder:
        for name, tensors in files.items():
            torch.save(tensors, Path(folder) / name)
        (Path(folder) / "spec.yaml").write_text(text)
        yield lambda **kw: load_spec(Path(folder) / "spec.yaml", **kw)


def _check(
    load: Callable[..., Any],
    model: nn.Module,
    inputs: dict[str, tuple[int, ...]],
    seed: int,
    dtypes: dict[str, str] | None,
    pinned: bool,
) -> Checked:
    checked = _compare(load(), model, inputs, seed, dtypes, 2)
    other = {k: other_size(v) for k, v in inputs.items()}
    if pinned or other == inputs or not _model_takes(model, other, seed, dtypes):
        return checked
    try:
        spec = load(overrides=[f"inputs.{k}.shape={list(v)}" for k, v in other.items()])
        _compare(spec, model, other, seed, dtypes, 3)
    except SpecError as e:
        at = ", ".join("x".join(map(str, v)) for v in other.values())
        wrong = "gives other outputs than the model" if "outputs" in e.message else "does not compile"
        checked.fixed_by = f"a size computed in forward is a number in the spec: at {at} it {wrong}"
    return checked


def _model_takes(
    model: nn.Module, inputs: dict[str, tuple[int, ...]], seed: int, dtypes: dict[str, str] | None
) -> bool:
    """Whether the model runs on inputs of these sizes (many take one size only)."""
    xs = example_inputs(model, inputs, dtypes, 3, torch.Generator().manual_seed(seed))
    try:
        with torch.no_grad():
            model(*xs)
    except Exception:  # an assert on the size, a shape mismatch: the model is fixed at its size
        return False
    return True


def _compare(
    spec: object,
    model: nn.Module,
    inputs: dict[str, tuple[int, ...]],
    seed: int,
    dtypes: dict[str, str] | None,
    batch: int,
) -> Checked:
    """Compile ``spec``, load the model's state_dict strictly, compare outputs at ``batch``."""
    from ..api import compile_spec

    try:
        compiled = compile_spec(spec)  # type: ignore[arg-type]
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
    xs = example_inputs(model, inputs, dtypes, batch, generator)
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
