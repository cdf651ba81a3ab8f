"""The ``sweep:`` section: what to search (spec paths and their spaces), what to optimise, how.

Checked once, when the spec is loaded, like every other section: each space is tried on the spec
itself (its smallest, largest and, for a float space, a fractional value are set at its path and
the spec validated again), so an unknown path or a space the key cannot hold is one located line
at the sweep's key. The spec's validator calls :func:`check_sweep` with that probe.

>>> SpaceSpec.model_validate({"loguniform": [1e-4, 1e-1]}).kind
'loguniform'
>>> SpaceSpec.model_validate({"int": [16, 128], "step": 16}).probe_values()
[16, 128]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from ..compiler.spec_base import SpecModel, reported_at_spec_path
from ..errors import SpecError, did_you_mean

__all__ = ["SpaceSpec", "SweepSpec", "check_sweep", "KINDS"]

# the spaces a parameter can have, in the order the reference lists them
KINDS = ("uniform", "loguniform", "int", "choice", "grid")
Scalar = bool | int | float | str | None


class SpaceSpec(SpecModel):
    """One parameter's space: exactly one of `uniform`, `loguniform`, `int`, `choice`, `grid`."""

    uniform: tuple[float, float] | None = Field(None, description="Floats drawn evenly from [low, high].")
    loguniform: tuple[float, float] | None = Field(
        None, description="Floats drawn evenly on a log scale from [low, high] (a learning rate)."
    )
    int_: tuple[int, int] | None = Field(None, alias="int", description="Integers from [low, high], both included.")
    step: int | None = Field(
        None, ge=1, description="With `int`: only low, low + step, ... (`int: [16, 128], step: 16`)."
    )
    log: bool = Field(False, description="With `int`: drawn on a log scale (widths 8...512).")
    choice: list[Scalar] | None = Field(
        None, min_length=1, description="One of these values (numbers, strings, booleans)."
    )
    grid: list[Scalar] | None = Field(
        None,
        min_length=1,
        description="Every one of these values, in turn: with grids alone, the sweep tries every combination.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SpaceSpec:
        given = [k for k in KINDS if self._value(k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise ValueError(f"a space has exactly one of {', '.join(KINDS)}; this one has {what}")
        bounds = self._value(self.kind)
        if self.kind in ("uniform", "loguniform", "int") and not bounds[0] < bounds[1]:
            raise ValueError(f"`{self.kind}: [low, high]` needs low < high; got {list(bounds)}")
        if self.kind == "loguniform" and bounds[0] <= 0:
            raise ValueError(f"`loguniform` needs low > 0 (a log scale); got {bounds[0]}")
        if (self.step is not None or self.log) and self.kind != "int":
            raise ValueError("`step` and `log` go with an `int` space")
        if self.kind == "int" and self.log and (self.step not in (None, 1) or bounds[0] < 1):
            raise ValueError("`int` with `log: true` needs low >= 1 and no step")
        return self

    def _value(self, kind: str) -> Any:
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if self._value(k) is not None)

    @property
    def values(self) -> list[Any]:
        """The values of a `choice` or `grid` space."""
        return list(self._value(self.kind)) if self.kind in ("choice", "grid") else []

    def probe_values(self) -> list[Any]:
        """Values the spec is validated with when loaded: the ends, and for floats one with a
        fraction (so a float space on an integer key is found even where pydantic takes 2.0 as 2)."""
        if self.kind in ("choice", "grid"):
            return self.values
        low, high = self._value(self.kind)
        if self.kind == "int":
            return [low, high]
        inside = low + (high - low) * 0.381966  # the golden section: rarely a whole number
        return [low, high, inside if inside != math.floor(inside) else inside + 1e-3]


class SweepSpec(SpecModel):
    """A search over this spec's values, run by `netspec sweep SPEC` on Optuna (docs/sweeps.md)."""

    metric: str = Field(description="The per-epoch metric to optimise, such as `val_accuracy` or `val_loss`.")
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="`auto`: minimise a loss, maximise a metric where higher is better (accuracy...)."
    )
    trials: int = Field(
        20, ge=1, description="How many trials the sweep runs in all (a resumed sweep counts the ones done)."
    )
    params: dict[str, SpaceSpec] = Field(
        min_length=1,
        description=(
            "Spec paths (as with --set: a spec parameter `width`, or `optimizer.args.lr`, `train.epochs`) "
            "and their spaces: `{loguniform: [1e-4, 0.1]}`, `{int: [1, 4]}`, `{choice: [32, 64]}`..."
        ),
    )
    sampler: Literal["auto", "tpe", "random", "grid"] = Field(
        "auto", description="`auto`: `grid` when every space is a grid, else `tpe` (Optuna's TPESampler)."
    )
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = Field(
        "median", description="Stops trials whose per-epoch metric is worse than the others' at the same epoch."
    )
    startup_trials: int = Field(2, ge=0, description="Trials that are never pruned, before the pruner judges (median).")
    warmup_epochs: int = Field(1, ge=0, description="Epochs of every trial that are never pruned (median).")
    seed: int = Field(0, ge=0, description="Seeds the sampler; each trial's training is seeded by `train.seed`.")

    @model_validator(mode="after")
    def _grid_alone(self) -> SweepSpec:
        kinds = {s.kind for s in self.params.values()}
        other = next((k for k, s in self.params.items() if s.kind != "grid"), None)
        with reported_at_spec_path():
            if other is not None and (self.sampler == "grid" or "grid" in kinds):
                raise SpecError(
                    f"a `grid` space goes with grids alone, and `{other}` is a {self.params[other].kind} space",
                    path=("params", other),
                    key=True,
                    hint="write `choice` instead of `grid` to mix it with other spaces",
                )
        return self

    @property
    def grid_size(self) -> int | None:
        """How many combinations an all-grid sweep has (None otherwise)."""
        if any(s.kind != "grid" for s in self.params.values()):
            return None
        return math.prod(len(s.values) for s in self.params.values())

    @property
    def total(self) -> int:
        """How many trials the sweep runs: ``trials``, or fewer when a grid has fewer combinations."""
        grid = self.grid_size
        return min(grid, self.trials) if grid is not None else self.trials

    @property
    def sampler_name(self) -> str:
        return ("grid" if self.grid_size is not None else "tpe") if self.sampler == "auto" else self.sampler


# A node's or block's argument is swept through a spec parameter: paths into them are refused.
_THROUGH_PARAMS = ("nodes", "blocks", "inputs", "outputs")


def check_sweep(spec: Any, probe: Callable[[list[str]], None]) -> None:
    """Every space fits its key and the metric is one a run produces; a SpecError at the sweep's
    key otherwise. ``probe(["path=value", ...])`` validates the spec (without its sweep) with
    those ``--set``-style overrides and raises a SpecError where they do not fit.

    >>> from types import SimpleNamespace as NS
    >>> sweep = SweepSpec.model_validate({"metric": "train_loss", "params": {"nodes.0.width": {"int": [1, 2]}}})
    >>> check_sweep(NS(sweep=sweep, params={}, train=None, data=None, loss=None, output_names=["y"]), lambda s: None)
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: sweep.params.nodes.0.width: a sweep sets a node's argument through a spec parameter; ...
    """
    import json

    sweep = spec.sweep
    _check_metric(spec, sweep.metric)
    for name, space in sweep.params.items():
        where = ("sweep", "params", name)
        head = name.split(".")[0]
        if head in _THROUGH_PARAMS:
            raise SpecError(
                f"a sweep sets a node's argument through a spec parameter; it cannot reach into `{head}` directly",
                path=where,
                key=True,
                hint="declare `params: {width: 64}`, write `out_features: $width` in the node, and sweep `width`",
            )
        if "." not in name and name in (spec.params or {}):
            _check_param_type(name, spec.params[name], space, where)
        for value in space.probe_values():
            try:
                probe([f"{name}={json.dumps(value)}"])
            except SpecError as err:
                raise SpecError(
                    f"the {space.kind} space does not fit `{name}`: set to {json.dumps(value)}, {err.message}",
                    path=where,
                    key=True,
                    hint=err.hint,
                ) from None


def _check_metric(spec: Any, metric: str) -> None:
    from ..training.rules import produced_metrics, static_has_val

    produced = produced_metrics(spec, static_has_val(spec))
    if metric not in produced:
        raise SpecError(
            f"no metric `{metric}` is produced; the run produces {', '.join(produced)}",
            path=("sweep", "metric"),
            hint=did_you_mean(metric, produced),
        )


def _check_param_type(name: str, default: Any, space: SpaceSpec, where: tuple[str, ...]) -> None:
    """A spec parameter's type is its default's: a width written 64 takes integers only."""
    kind = type(default)
    if default is None:
        return
    values = space.values if space.kind in ("choice", "grid") else None
    if kind is bool:
        fits = values is not None and all(isinstance(v, bool) for v in values)
    elif kind is int:
        fits = space.kind == "int" or (values is not None and all(_is_int(v) for v in values))
    elif kind is float:
        fits = values is None or all(_is_number(v) for v in values)
    else:
        fits = values is not None and all(isinstance(v, str) for v in values)
    if not fits:
        shown = f"{space.kind}: {values}" if values is not None else f"a {space.kind} space"
        raise SpecError(
            f"`{name}` is {_TYPE_NAMES.get(kind, 'a ' + kind.__name__)} parameter (default {default!r}); "
            f"{shown} cannot hold it",
            path=where,
            key=True,
            hint={
                int: "use `int: [low, high]` or a choice of integers",
                bool: "use `choice: [true, false]`",
                str: "use a choice of strings",
            }.get(kind, "use numbers"),
        )


_TYPE_NAMES = {int: "an integer", float: "a float", bool: "a boolean", str: "a string"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
