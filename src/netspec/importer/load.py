"""``MODULE:CALLABLE [--args k=v ...]`` -> an ``nn.Module``, importing only what the user named.

Importing Python runs its code. A module name (``torchvision.models``) is imported from the
installed packages -- naming it on the command line is the permission, as with ``python -m``;
the current folder is not searched, so a stray ``torchvision.py`` there is never run. A file
(``models/net.py:Net``) is the user's own code and is imported only when ``--allow-import``
names that file too (or ``*``), the same flag that lets a spec import custom layers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

from ..compiler.spec import DType
from .errors import USER_MODULE, ImportFailed

DEFAULT_INPUT = (3, 224, 224)


def parse_target(target: str) -> tuple[str, str]:
    """``torchvision.models:resnet18`` -> ``("torchvision.models", "resnet18")``.

    >>> parse_target("models/net.py:Net")
    ('models/net.py', 'Net')
    """
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise ImportFailed(f"`{target}` is not MODULE:CALLABLE", hint="e.g. torchvision.models:resnet18 or net.py:Net")
    return module, attr


def is_file(module: str) -> bool:
    """Whether the module part names a file (the user's code) rather than an installed module.

    >>> is_file("torchvision.models"), is_file("net.py"), is_file("models/net")
    (False, True, True)
    """
    return module.endswith(".py") or "/" in module or os.sep in module


def parse_args(items: list[str]) -> dict[str, Any]:
    """``["num_classes=10", "dropout=0.2"]`` -> keyword arguments; values read as YAML scalars,
    exactly like ``--set`` values.

    >>> parse_args(["num_classes=10", "aux_logits=false", "name=net", "sizes=[1, 2]"])
    {'num_classes': 10, 'aux_logits': False, 'name': 'net', 'sizes': [1, 2]}
    """
    import yaml

    from ..compiler.source import _SpecLoader

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ImportFailed(f"--args `{item}` is not KEY=VALUE", hint="e.g. --args num_classes=10")
        try:
            out[key.strip()] = yaml.load(text, Loader=_SpecLoader)
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def load_callable(target: str, allow_imports: list[str] | None) -> Callable[..., Any]:
    """The callable ``target`` names, importing its module (see the module docstring).

    >>> load_callable("torch.nn:Linear", None).__name__
    'Linear'
    >>> load_callable("net.py:Net", None)
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: importing `net.py` runs its code; refused; allow it explicitly: --allow-import net.py
    """
    module_name, attr = parse_target(target)
    module = _import_file(module_name, allow_imports) if is_file(module_name) else _import_installed(module_name)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportFailed(f"`{module_name}` has no `{attr}`")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImportFailed(f"`{target}` is not a class or function")
    return obj


def _import_installed(name: str) -> Any:
    here = {"", ".", os.getcwd()}
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in here]  # never the current folder's files
    try:
        return importlib.import_module(name)
    except ImportError as e:
        hint = (
            "a file of yours is imported as PATH.py:CALLABLE with --allow-import PATH.py"
            if Path(f"{name.replace('.', '/')}.py").exists()
            else None
        )
        raise ImportFailed(f"cannot import `{name}`: {e}", hint=hint) from None
    finally:
        sys.path[:] = saved


def _import_file(path: str, allow_imports: list[str] | None) -> Any:
    file = Path(path)
    allowed = [Path(a).resolve() for a in allow_imports or [] if a != "*"]
    if "*" not in (allow_imports or []) and file.resolve() not in allowed:
        raise ImportFailed(
            f"importing `{path}` runs its code; refused", hint=f"allow it explicitly: --allow-import {path}"
        )
    if not file.is_file():
        raise ImportFailed(f"no file `{path}`")
    name = f"{USER_MODULE}{file.stem}"  # never a name `MODULE:...` could reach: that one would skip this check
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ImportFailed(f"importing `{path}` failed: {type(e).__name__}: {e}") from None
    return module


#: the most parameters (and buffer values) a model may have before it is built for real
MAX_PARAMS = 2_000_000_000


def build(fn: Callable[..., Any], kwargs: dict[str, Any], target: str, max_params: int = MAX_PARAMS) -> Any:
    """Call the builder or class with the ``--args``; it must give an ``nn.Module``.

    It is built on the meta device first (no memory): a model over ``max_params`` parameters
    is refused before anything is allocated. Any exception the constructor raises is one line
    naming ``--args``.

    >>> build(dict, {"a": 1}, "builtins:dict")
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: `builtins:dict` gave a dict, not a torch.nn.Module
    >>> build(__import__("torch").nn.Linear, {"in_features": 10 ** 6, "out_features": 10 ** 4}, "torch.nn:Linear")
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: --args: `torch.nn:Linear` would have 10,000,010,000 parameters, over the limit of 2,000,000,000; check the --args; raise the limit with --max-params if this is intended
    """
    size = _meta_size(fn, kwargs)
    if size is not None and size > max_params:
        raise ImportFailed(
            f"`{target}` would have {size:,} parameters, over the limit of {max_params:,}",
            where="--args",
            hint="check the --args; raise the limit with --max-params if this is intended",
        )
    model = _call(fn, kwargs, target)
    if not _is_module(model):
        raise ImportFailed(f"`{target}` gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _is_module(obj: Any) -> bool:
    from torch import nn

    return isinstance(obj, nn.Module)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any], target: str) -> Any:
    """``fn(**kwargs)``; whatever it raises (a TypeError for an unknown argument, a ValueError or
    an AssertionError for a bad value) becomes one line naming ``--args``."""
    try:
        return fn(**kwargs)
    except Exception as e:
        from ..errors import first_line

        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise ImportFailed(
            f"`{target}` cannot be called with {given}: {type(e).__name__}: {first_line(e)}",
            where="--args",
            hint="pass constructor arguments with --args KEY=VALUE",
        ) from None


def _meta_size(fn: Callable[..., Any], kwargs: dict[str, Any]) -> int | None:
    """Parameters and buffer values of the model built on the meta device; None when it cannot
    be built there (a constructor that reads tensor values): then the real build decides."""
    import torch

    try:
        with torch.device("meta"), _quiet():
            model = fn(**kwargs)
    except Exception:
        return None
    if not _is_module(model):
        return None
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Warnings of the meta build are the real build's to give (once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


DTYPES = get_args(DType)  # what a spec input may be


def input_shapes(model: Any, sizes: list[str] | None, fn: Callable[..., Any]) -> dict[str, tuple[int, ...]]:
    """The per-sample shape of each tensor argument of ``model.forward``: from ``--input-size``
    (``3x224x224`` for the first, ``NAME=3x224x224`` by name), or torchvision's own size.
    An argument with a default is fixed at it, unless ``--input-size`` names it.

    >>> import torch
    >>> input_shapes(torch.nn.Bilinear(2, 3, 4), ["input1=5x2", "input2=5x3"], torch.nn.Bilinear)
    {'input1': (5, 2), 'input2': (5, 3)}
    """
    required, optional = _forward_arguments(model)
    given = {name: shape for name, shape, _ in _read_sizes(sizes, required, optional)}
    default = _default_size(model, fn)
    for name in required:
        if name not in given:
            if default is None or len(required) > 1:
                raise ImportFailed(
                    f"the size of input `{name}` is unknown",
                    hint=f"give it: --input-size {name}=3x32x32"
                    if len(required) > 1
                    else "give it: --input-size 3x32x32",
                )
            given[name] = default
    return {n: given[n] for n in [*required, *optional] if n in given}


def input_dtypes(model: Any, sizes: list[str] | None) -> dict[str, str]:
    """The dtype of each input ``--input-size`` gives one (``tokens=16:int64``); float32 elsewhere.

    >>> import torch
    >>> input_dtypes(torch.nn.Embedding(10, 4), ["16:int64"])
    {'input': 'int64'}
    """
    return {name: dtype for name, _, dtype in _read_sizes(sizes, *_forward_arguments(model)) if dtype != "float32"}


def checked_inputs(model: Any, inputs: Any, dtypes: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``spec_from_module``'s ``inputs`` and ``dtypes`` checked against ``model.forward`` (the
    command line's are made from it): each input an argument of forward, every argument without
    a default given, each shape a list of sizes, each dtype one a spec input may have. Returns
    them in forward's order (the spec's inputs are the compiled module's arguments, in order).

    >>> import torch
    >>> checked_inputs(torch.nn.Bilinear(2, 3, 4), {"input2": [3], "input1": (2,)}, None)
    ({'input1': (2,), 'input2': (3,)}, {})
    >>> checked_inputs(torch.nn.Bilinear(2, 3, 4), {"image": (2,)}, None)
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: `inputs` names `image`, which forward does not take (it takes input1, input2); name each input after the forward argument it is
    """
    required, optional = _forward_arguments(model)
    takes = ", ".join(required + optional) or "no tensors"
    if not isinstance(inputs, dict) or not inputs:
        raise ImportFailed(
            f"`inputs` is {inputs!r:.60}, not a dict of sample shapes by name", hint=f"forward takes {takes}"
        )
    for name, shape in inputs.items():
        if name not in required + optional:
            raise ImportFailed(
                f"`inputs` names `{name}`, which forward does not take (it takes {takes})",
                hint="name each input after the forward argument it is",
            )
        if not isinstance(shape, (tuple, list)) or not all(type(d) is int and d > 0 for d in shape):
            raise ImportFailed(
                f"input `{name}`: {shape!r:.60} is not a sample shape (a tuple of sizes like (3, 32, 32))"
            )
    missing = [n for n in required if n not in inputs]
    if missing:
        raise ImportFailed(
            f"forward's argument `{missing[0]}` has no default and no shape in `inputs`",
            hint=f"give it: inputs={{..., '{missing[0]}': (3, 32, 32)}}",
        )
    dtypes = dict(dtypes or {})
    for name, dtype in dtypes.items():
        if name not in inputs:
            raise ImportFailed(f"`dtypes` names `{name}`, which is not one of the inputs ({', '.join(inputs)})")
        if dtype not in DTYPES:
            raise ImportFailed(f"`dtypes`: input `{name}`'s dtype `{dtype}` is not one of {', '.join(DTYPES)}")
    return {n: tuple(inputs[n]) for n in required + optional if n in inputs}, dtypes


def check_names(model: Any, inputs: dict[str, Any]) -> None:
    """Refuse, in one line naming the attribute, a model whose state_dict keys a spec cannot keep:
    a key part that is a Python keyword or an attribute of the compiled module (node names are
    Python attributes of it), or a child named like one of forward's tensor arguments (a spec's
    inputs and nodes share one namespace). Without this the spec would be written, then refused.

    >>> import torch
    >>> net = torch.nn.Module(); net.add_module("lambda", torch.nn.Linear(2, 2))
    >>> check_names(net, {"x": (2,)})
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: `lambda`: `lambda` is a Python keyword, and a spec's node names are Python attributes; rename that attribute of the model
    """
    import keyword

    from ..compiler.graph import RESERVED_NAMES

    keys = [k for k, _ in model.named_modules(remove_duplicate=False) if k]
    keys += list(model.state_dict(keep_vars=True))
    for key in keys:
        for part in key.split("."):
            if keyword.iskeyword(part):
                why = "a Python keyword"
            elif part in RESERVED_NAMES:
                why = "an attribute every compiled module has"
            else:
                continue
            raise ImportFailed(
                f"`{key}`: `{part}` is {why}, and a spec's node names are Python attributes",
                hint="rename that attribute of the model",
            )
    clash = next((name for name, _ in model.named_children() if name in inputs), None)
    if clash is not None:
        raise ImportFailed(
            f"child `{clash}` has the name of forward's argument `{clash}`, and a spec's inputs and nodes "
            "share one namespace",
            hint="rename the argument (or the child)",
        )


def _forward_arguments(model: Any) -> tuple[list[str], list[str]]:
    """The positional arguments of ``model.forward``: those without a default, those with one."""
    params = [
        p
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return [p.name for p in params if p.default is p.empty], [p.name for p in params if p.default is not p.empty]


def _read_sizes(sizes: list[str] | None, required: list[str], optional: list[str]) -> list[tuple[str, tuple, str]]:
    """``--input-size`` items -> (argument, shape, dtype); unnamed items go to the arguments in order."""
    out = []
    for i, item in enumerate(sizes or []):
        name, _, rest = item.rpartition("=")
        dims, _, dtype = rest.partition(":")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ImportFailed(f"--input-size `{item}` is not like 3x224x224, x=3x224x224 or tokens=16:int64") from None
        if (dtype := dtype or "float32") not in DTYPES:
            raise ImportFailed(f"--input-size `{item}`: dtype `{dtype}` is not one of {', '.join(DTYPES)}")
        name = name or (required[i] if i < len(required) else "")
        if name not in required + optional:
            raise ImportFailed(f"--input-size `{item}`: forward takes {', '.join(required + optional) or 'no tensors'}")
        out.append((name, shape, dtype))
    return out


def _default_size(model: Any, fn: Callable[..., Any]) -> tuple[int, ...] | None:
    """torchvision's classification models: their ``image_size``, else their weights' crop size."""
    if not getattr(fn, "__module__", "").startswith("torchvision.models"):
        return None
    size = getattr(model, "image_size", None)
    if isinstance(size, int):
        return (3, size, size)
    try:
        import torchvision.models as tvm

        crop = tvm.get_model_weights(fn).DEFAULT.transforms.keywords.get("crop_size")
    except Exception:
        crop = None
    return (3, crop, crop) if isinstance(crop, int) else DEFAULT_INPUT
