"""Weights from files: a state_dict, or a checkpoint holding one, loaded into a model.

Every file is read with ``torch.load(weights_only=True)``: a file holding a whole pickled model
is refused (unpickling can run arbitrary code). Keys are matched and shapes compared before
anything is loaded, so a mismatch is one line naming the key and both shapes.
"""

from __future__ import annotations

import inspect
import pickle
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, did_you_mean, first_line, summarise
from ..registry import SpecPath
from .rundir import Log

if TYPE_CHECKING:
    from .spec import WeightsSpec

__all__ = ["load_weights", "read_weights_file", "check_fits"]


def load_weights(model: nn.Module, spec: WeightsSpec, *, base_dir: Path = Path("."), log: Log | None = None, path: SpecPath = ("init", "weights")) -> None:
    """Load a state_dict (or a checkpoint holding one) into ``model``.

    Uses ``torch.load(weights_only=True)``: a file holding a whole pickled model is refused
    (unpickling can run arbitrary code). ``module.`` prefixes (DataParallel) are removed.
    A shape mismatch is a CheckpointError naming the key and both shapes.
    """
    log = log or Log.quiet()
    file = Path(spec.path) if Path(spec.path).is_absolute() else Path(base_dir) / spec.path
    option = str(path[0]).startswith("--")  # eval's --checkpoint: named as typed, no `strict:` to offer
    state = _state_dict_from(read_weights_file(file, path if option else (*path, "path")), spec.key, file, path)
    state, notes = _rename_keys(state, spec)
    own = model.state_dict()
    missing, unexpected = check_fits(own, state, str(file) if option else file.name, path, strict=spec.strict,
                                      hint=OTHER_SPEC_HINT.get(str(path[0])))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    msg = f"loaded {len(own) - len(missing)}/{len(own)} tensors from {file}" + "".join(f" ({n})" for n in notes)
    if missing:
        msg += f"; kept from init: {summarise(missing)}"
    if unexpected:
        msg += f"; ignored from the file: {summarise(unexpected)}"
    log.info(msg)


OTHER_SPEC_HINT = {
    "--checkpoint": "was it saved by another spec? evaluate it with the spec it was trained with",
    "--resume": "was it saved by another spec? resume with the spec it was trained with, or start a new run "
                "from its weights with `init: {weights: {path: ..., strict: false}}`",
}


def check_fits(own: dict[str, Tensor], state: dict[str, Tensor], name: str, path: SpecPath, *, strict: bool,
                hint: str | None = None) -> tuple[list[str], list[str]]:
    """CheckpointError unless ``state`` fits the model's state_dict ``own``: every shared key has
    the same shape and (``strict``) the keys are the same. Returns (missing, unexpected) keys."""
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"`{key}` has shape {tuple(value.shape)} in {name} but {tuple(own[key].shape)} in the model",
                path=path,
                hint=hint or "a different number of classes or channels? load with `strict: false` and drop the layer's weights from the file",
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        parts = [f"{len(missing)} model keys missing from the file ({summarise(missing)})" if missing else "",
                 f"{len(unexpected)} file keys not in the model ({summarise(unexpected)})" if unexpected else ""]
        close = did_you_mean(unexpected[0], own) if unexpected and len(unexpected) == len(missing) == 1 else None
        raise CheckpointError(
            f"{name} does not match the model: " + "; ".join(filter(None, parts)),
            path=path,
            hint=close or hint or "set `strict: false` to load what matches",
        )
    return missing, unexpected


def read_weights_file(file: Path, path: SpecPath) -> Any:
    if not file.is_file():
        raise CheckpointError(f"weights file {file} not found", path=path)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            what = found.group(1)
            whole = _is_module_class(what)
            raise CheckpointError(
                f"{file} holds {'a whole pickled model' if whole else 'a pickled Python object'} ({what}); "
                "netspec loads weights only, with torch.load(weights_only=True), because unpickling "
                "can run arbitrary code",
                path=path,
                hint="in a trusted environment re-save it as a state_dict: "
                "torch.save(torch.load(f, weights_only=False).state_dict(), f)",
            ) from None
        raise CheckpointError(f"{file} is not a PyTorch weights file: {first_line(err)}", path=path) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        why = first_line(err).split(". This is an internal miniz error")[0]  # then 3 sentences of advice
        raise CheckpointError(f"{file} cannot be read (truncated or not a PyTorch file): {why}", path=path) from None


def _is_module_class(dotted: str) -> bool:
    module_name, _, attr = dotted.rpartition(".")
    mod = sys.modules.get(module_name)
    cls = getattr(mod, attr, None) if mod else None
    return inspect.isclass(cls) and issubclass(cls, nn.Module)


_STATE_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights")


def _state_dict_from(obj: Any, key: str | None, file: Path, path: SpecPath) -> dict[str, Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state_dict", path=path)
    if key is not None:
        if key not in obj:
            raise CheckpointError(f"{file} has no entry `{key}`; it has {', '.join(map(str, obj))}", path=(*path, "key"), hint=did_you_mean(key, map(str, obj)))
        obj = obj[key]
    elif not _is_state_dict(obj):
        found = [k for k in _STATE_KEYS if k in obj and _is_state_dict(obj[k])]
        if not found:
            raise CheckpointError(f"no state_dict found in {file}; its entries are {', '.join(map(str, obj))}", path=path, hint="name the entry with `key:`")
        obj = obj[found[0]]
    if not _is_state_dict(obj):
        raise CheckpointError(f"entry `{key}` of {file} is not a state_dict", path=(*path, "key"))
    return obj


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _rename_keys(state: dict[str, Tensor], spec: WeightsSpec) -> tuple[dict[str, Tensor], list[str]]:
    notes = []
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("removed DataParallel prefix `module.`")
    if spec.strip_prefix:
        state = {k[len(spec.strip_prefix):] if k.startswith(spec.strip_prefix) else k: v for k, v in state.items()}
        notes.append(f"removed prefix `{spec.strip_prefix}`")
    if spec.add_prefix:
        state = {spec.add_prefix + k: v for k, v in state.items()}
        notes.append(f"added prefix `{spec.add_prefix}`")
    return state, notes
