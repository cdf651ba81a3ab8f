"""Optimizers: the registry (every ``torch.optim`` optimizer), the spec check and the builder.

The check runs once, when the spec is loaded (:class:`netspec.training.spec.OptimizerSpec`'s
validator calls :func:`check_optimizer`); :func:`build_optimizer` trusts the spec and only
checks what needs the model: the parameter-group patterns against its parameter names.

>>> "AdamW" in OPTIMIZERS and "LBFGS" not in OPTIMIZERS
True
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import logging
import math
import re
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import SpecError, TrainingError, did_you_mean, fmt_args, fmt_call, number_string_hint, summarise
from ..nodes.registry import Registry, SpecPath, check_args

if TYPE_CHECKING:
    from .spec import OptimizerSpec, ParamGroupSpec

__all__ = ["OPTIMIZERS", "check_optimizer", "build_optimizer", "stand_in_optimizer"]

logger = logging.getLogger(__name__)


def _torch_optimizers(registry: Registry[type[torch.optim.Optimizer]]) -> None:
    for name, cls in vars(torch.optim).items():
        if (
            inspect.isclass(cls)
            and issubclass(cls, torch.optim.Optimizer)
            and cls is not torch.optim.Optimizer
            and name not in registry.refused
        ):
            registry.add(name, cls)


#: optimizer name -> torch.optim class; every optimizer of torch.optim but LBFGS.
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer", fill=_torch_optimizers, passed=("params",))
OPTIMIZERS.refuse("LBFGS", "LBFGS is not supported: LBFGS needs a closure that re-evaluates the model on every step")


def check_optimizer(spec: OptimizerSpec) -> None:
    """Name, arguments, group options and regular expressions of an ``optimizer:`` section;
    then the optimizer is made on a stand-in parameter, so that a wrong value (a negative lr,
    `lr: "1e-5"` read as text) is reported at its line before any work.

    Paths are relative to the section.

    >>> from netspec.training.spec import OptimizerSpec
    >>> check_optimizer(OptimizerSpec.model_construct(name="SGD", args={"lr": 0.1, "momentun": 0.9}, groups=[]))
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: args.momentun: SGD has no argument `momentun`; did you mean `momentum`?
    """
    cls = OPTIMIZERS.check(spec)
    refuse_non_finite(spec.args, spec.args_path(()))
    every_arg = tuple(inspect.signature(cls).parameters)  # a group may leave out any argument
    for i, group in enumerate(spec.groups):
        refuse_non_finite(group.options(), ("groups", i))
        check_args(cls, group.options(), ("groups", i), what=spec.name, skip=OPTIMIZERS.passed, filled=every_arg)
        if group.match == "regex":
            for j, pattern in enumerate(group.patterns()):
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise SpecError(
                        f"bad regular expression `{pattern}`: {err}", path=_pattern_path((), i, group.params, j)
                    ) from None
    stand_in_optimizer(spec)


def refuse_non_finite(args: dict[str, Any], path: SpecPath) -> None:
    """NaN and inf are never an optimizer's or a scheduler's setting: torch's SGD would train with
    `lr: .nan` or `lr: .inf` (Adam refuses NaN), StepLR would multiply by `gamma: .inf`. Lists
    (`betas`, `milestones`) are looked into.

    >>> refuse_non_finite({"lr": float("nan")}, ("args",))
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: args.lr: `lr` is NaN (not a number); give a number
    >>> refuse_non_finite({"betas": [0.9, float("inf")]}, ("Adam",))
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: Adam.betas[1]: `betas` is inf; give a finite number
    """
    for key, value in args.items():
        items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
        for i, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                at = (*path, key) if i is None else (*path, key, i)
                if math.isnan(item):
                    raise SpecError(f"`{key}` is NaN (not a number)", path=at, hint="give a number")
                raise SpecError(f"`{key}` is {item}", path=at, hint="give a finite number")


def stand_in_optimizer(spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The spec's optimizer over one stand-in parameter (its groups left out): for the checks of
    the optimizer's and the schedulers' values before the model exists.

    >>> from netspec.training.spec import OptimizerSpec
    >>> opt = stand_in_optimizer(OptimizerSpec.model_validate({"Adam": {"lr": 0.1}}))
    >>> isinstance(opt, torch.optim.Adam), opt.param_groups[0]["lr"]
    (True, 0.1)
    """
    weight = nn.Parameter(torch.zeros(2, 2))  # no random init: the run's RNG stays untouched
    # a class is hashable for lru_cache; torch's Optimizer stub says otherwise
    return _construct(spec, [{"params": [weight]}], (), cls=_stand_in_class(OPTIMIZERS[spec.name]))  # type: ignore[arg-type]


@functools.cache
def _stand_in_class(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` with torch's own ``add_param_group`` unwrapped. torch wraps it in a guard whose
    first call imports torch._dynamo (1-2 s, most of a `netspec validate`); the stand-in is made
    once, eagerly, and never meets torch.compile."""
    plain = getattr(cls.add_param_group, "__wrapped__", None)
    if plain is None:
        return cls
    return type(cls.__name__, (cls,), {"add_param_group": plain, "__module__": cls.__module__, "__doc__": cls.__doc__})


def build_optimizer(
    spec: OptimizerSpec,
    model: nn.Module,
    *,
    path: SpecPath = ("optimizer",),
    defaults: dict[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """A torch.optim optimizer over the model's trainable parameters, grouped by pattern.

    Frozen parameters are left out; those matching no group form the default group (or are
    excluded with ``ungrouped: exclude``); a parameter matching two groups is an error.
    ``defaults`` are arguments netspec adds (``fused=True``: :mod:`netspec.training.speed`);
    the spec's own arguments win, and an optimizer that refuses them is made without them.

    >>> from netspec.training.spec import OptimizerSpec
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> opt = build_optimizer(OptimizerSpec.model_validate({"SGD": {"lr": 1e-5}, "groups": [{"params": "1.*", "lr": 1e-2}]}), m)
    >>> [g["lr"] for g in opt.param_groups]
    [0.01, 1e-05]
    """
    named = list(model.named_parameters())
    owner: dict[str, int] = {}  # parameter name -> its group
    groups: list[dict[str, Any]] = []
    for i, group in enumerate(spec.groups):
        names = _group_names(group, i, named, model, path)
        for n in (n for n, _ in named if n in names):  # model order: the first clash is reported
            if n in owner:
                raise SpecError(
                    f"parameter `{n}` matches groups {owner[n]} and {i}; each parameter may be in one group",
                    path=(*path, "groups", i, "params"),
                    hint="make the patterns disjoint",
                )
            owner[n] = i
        trainable = [p for n, p in named if n in names and p.requires_grad]
        options = group.options()
        if trainable:
            groups.append({"params": trainable, **options})
        frozen = len(names) - len(trainable)
        logger.info(
            f"optimizer group {i} ({_as_text(group.params)}): {len(trainable)} tensors"
            f"{' ' + fmt_call(options) if options else ''}" + (f", {frozen} frozen left out" if frozen else "")
        )
    groups += _ungrouped(spec, [(n, p) for n, p in named if n not in owner and p.requires_grad])
    if not groups:
        raise TrainingError("nothing to train: every parameter is frozen or excluded", path=path)
    if defaults:
        try:
            optimizer = OPTIMIZERS[spec.name](groups, **{**defaults, **spec.args})
            logger.info(f"optimizer: {spec.name}({fmt_args(defaults)}) added by netspec")
            return optimizer
        except (TypeError, ValueError, RuntimeError) as err:  # e.g. fused kernels need dense float parameters
            logger.info(f"optimizer: {spec.name} without {fmt_args(defaults)} ({str(err).splitlines()[0]})")
    return _construct(spec, groups, path)


def _ungrouped(spec: OptimizerSpec, rest: list[tuple[str, nn.Parameter]]) -> list[dict[str, Any]]:
    """The default group of the parameters no pattern matched (or none, with ``ungrouped: exclude``)."""
    if not rest:
        return []
    if spec.ungrouped == "exclude":
        for _, p in rest:
            p.requires_grad_(False)  # not optimised, so no gradient needed
        logger.info(f"not optimised (ungrouped: exclude): {len(rest)} tensors ({summarise([n for n, _ in rest])})")
        return []
    if spec.groups:
        logger.info(f"optimizer default group: {len(rest)} tensors{' ' + fmt_call(spec.args) if spec.args else ''}")
    return [{"params": [p for _, p in rest]}]


def _construct(
    spec: OptimizerSpec, groups: list[dict[str, Any]], path: SpecPath, cls: type[torch.optim.Optimizer] | None = None
) -> torch.optim.Optimizer:
    try:
        return (cls or OPTIMIZERS[spec.name])(groups, **spec.args)
    except (TypeError, ValueError, LookupError, RuntimeError) as err:  # `betas: ""` fails as betas[0]
        raise SpecError(
            f"{spec.name}({fmt_args(spec.args)}) failed: {err}",
            path=spec.args_path(path),
            hint=number_string_hint(spec.args),
        ) from None


def _group_names(
    group: ParamGroupSpec, i: int, named: list[tuple[str, nn.Parameter]], model: nn.Module, path: SpecPath
) -> set[str]:
    """Names of the parameters a group's patterns select; a pattern selecting none is an error."""
    names: set[str] = set()
    for j, pattern in enumerate(group.patterns()):
        if group.match == "regex":
            rx = re.compile(pattern)
            hits = {n for n, _ in named if rx.fullmatch(n)}
        else:
            hits = {n for n, _ in named if fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            choices = [n for n, _ in named] + [f"{m}.*" for m, _ in model.named_modules() if m]
            raise SpecError(
                f"pattern `{pattern}` matches no parameter",
                path=_pattern_path(path, i, group.params, j),
                hint=did_you_mean(pattern, choices, n=2)
                or f"parameter names look like {summarise([n for n, _ in named], 4)}",
            )
        names |= hits
    return names


def _pattern_path(path: SpecPath, i: int, params: str | list[str], j: int) -> SpecPath:
    base = (*path, "groups", i, "params")
    return base if isinstance(params, str) else (*base, j)


def _as_text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)
