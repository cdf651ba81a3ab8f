"""Initialisation: the registry of ``torch.nn.init`` functions and the ``init:`` rules.

Rules apply in order (later rules win) to the modules matching a layer type and/or a name
pattern; then weights load from a file (:mod:`netspec.training.weights`). The function names and
their arguments are checked when the spec is loaded (:func:`check_init_function`); which
modules a rule selects is known only once the model exists.

>>> "kaiming_normal_" in INIT_FUNCTIONS
True
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import SpecError, did_you_mean, fmt_call, summarise
from ..nodes.initializers import INIT_FUNCTIONS
from ..nodes.registry import SpecPath
from .weights import load_weights

if TYPE_CHECKING:
    from .spec import InitFnSpec, InitRuleSpec, InitSpec

__all__ = ["INIT_FUNCTIONS", "check_init_function", "init_model"]

logger = logging.getLogger(__name__)


def check_init_function(spec: InitFnSpec) -> None:
    """The function's name and arguments (when the spec is loaded)."""
    INIT_FUNCTIONS.check(spec)


def init_model(
    model: nn.Module,
    spec: InitSpec | None,
    *,
    base_dir: Path = Path("."),
    roots: tuple[Path, ...] = (),
) -> None:
    """Apply init rules in order, then load weights; log what was initialised, loaded, frozen.

    >>> from netspec.training.spec import InitSpec
    >>> m = nn.Sequential(nn.Linear(2, 2))
    >>> init_model(m, InitSpec.model_validate({"rules": [{"layer": "Linear", "bias": {"constant_": {"val": 0.3}}}]}))
    >>> m[0].bias.tolist()
    [0.30000001192092896, 0.30000001192092896]
    """
    if spec is not None:
        for i, rule in enumerate(spec.rules):
            _apply_rule(model, rule, ("init", "rules", i))
        if spec.weights is not None:
            load_weights(model, spec.weights, base_dir=base_dir, roots=roots)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        count = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        logger.info(f"frozen: {len(frozen)} tensors, {count:,} parameters ({summarise(frozen)})")


def _apply_rule(model: nn.Module, rule: InitRuleSpec, path: SpecPath) -> None:
    modules = _rule_modules(model, rule, path)
    done = []
    for part in ("weight", "bias"):
        fn_spec = getattr(rule, part)
        if fn_spec is None:
            continue
        fn = INIT_FUNCTIONS[fn_spec.name]
        names = []
        for name, module in modules:
            tensor = getattr(module, part, None)
            if not isinstance(tensor, Tensor):
                continue
            try:
                with torch.no_grad():
                    fn(tensor, **fn_spec.args)
            except (ValueError, RuntimeError, TypeError) as err:
                raise SpecError(
                    f"{fn_spec.name} cannot initialise `{name}.{part}` {tuple(tensor.shape)}: {err}", path=(*path, part)
                ) from None
            names.append(f"{name}.{part}")
        done.append(f"{part} {fn_spec.name}{fmt_call(fn_spec.args)} on {len(names)} tensors ({summarise(names)})")
    what = " ".join(filter(None, [_as_text(rule.layer), _as_text(rule.name)]))
    logger.info(f"init rules[{path[-1]}] {what}: " + "; ".join(done))


def _rule_modules(model: nn.Module, rule: InitRuleSpec, path: SpecPath) -> list[tuple[str, nn.Module]]:
    named = [(n, m) for n, m in model.named_modules() if n]
    selected = named
    if rule.layer is not None:
        types = _as_list(rule.layer)
        present = {type(m).__name__ for _, m in named}
        for j, t in enumerate(types):
            if not _is_torch_layer(t) and t not in present:
                layer_path = (*path, "layer") if isinstance(rule.layer, str) else (*path, "layer", j)
                raise SpecError(
                    f"no layer type `{t}` in torch.nn or in the model",
                    path=layer_path,
                    hint=did_you_mean(t, [*present, *_torch_layer_names()]),
                )
        selected = [(n, m) for n, m in selected if any(_is_layer(m, t) for t in types)]
    if rule.name is not None:
        patterns = _as_list(rule.name)
        for j, pat in enumerate(patterns):
            if not any(fnmatch.fnmatchcase(n, pat) for n, _ in named):
                name_path = (*path, "name") if isinstance(rule.name, str) else (*path, "name", j)
                raise SpecError(
                    f"init pattern `{pat}` matches no module",
                    path=name_path,
                    hint=did_you_mean(pat, [n for n, _ in named])
                    or f"module names look like {summarise([n for n, _ in named], 4)}",
                )
        selected = [(n, m) for n, m in selected if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return selected


def _is_torch_layer(name: str) -> bool:
    cls = getattr(nn, name, None)
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


def _torch_layer_names() -> list[str]:
    return [n for n in dir(nn) if _is_torch_layer(n)]


def _is_layer(module: nn.Module, name: str) -> bool:
    cls = getattr(nn, name, None)
    if inspect.isclass(cls) and issubclass(cls, nn.Module):
        return isinstance(module, cls)  # subclasses count, as with the seed's isinstance
    return type(module).__name__ == name


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _as_text(value: str | list[str] | None) -> str:
    return "" if value is None else value if isinstance(value, str) else ",".join(value)
