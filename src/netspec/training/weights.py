"""Weights from files: a state_dict, or a checkpoint holding one, loaded into a model.

Every file is read with ``torch.load(weights_only=True)``: a file holding a whole pickled model
is refused (unpickling can run arbitrary code); a ``.safetensors`` file holds tensors only and is
read with the safetensors library (:mod:`netspec.files.safetensorfile`). Keys are matched and shapes compared before
anything is loaded, so a mismatch is one line naming the key and both shapes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import AccessRefused, CheckpointError, DataError, did_you_mean, summarise
from ..files.access import FileAccess
from ..files.torchfile import load_torch_file
from ..nodes.registry import SpecPath

if TYPE_CHECKING:
    from .spec import WeightsSpec

__all__ = [
    "load_weights",
    "read_weights_file",
    "check_fits",
    "check_finite_weights",
    "standardize_statistics",
    "fitted_of",
]

logger = logging.getLogger(__name__)


def load_weights(
    model: nn.Module,
    spec: WeightsSpec,
    *,
    base_dir: Path = Path("."),
    roots: tuple[Path, ...] = (),
    path: SpecPath = ("init", "weights"),
) -> None:
    """Load a state_dict (or a checkpoint holding one) into ``model``.

    Uses ``torch.load(weights_only=True)``: a file holding a whole pickled model is refused
    (unpickling can run arbitrary code). ``module.`` prefixes (DataParallel) are removed.
    A shape mismatch is a CheckpointError naming the key and both shapes. A file the spec
    names is read only under ``base_dir`` and ``roots`` (:mod:`netspec.files.access`); one named on the
    command line (``path=("--checkpoint",)``) is the user's choice.
    """
    option = str(path[0]).startswith("--")  # eval's --checkpoint: named as typed, no `strict:` to offer
    file = Path(spec.path) if option else _spec_file(spec.path, base_dir, roots, (*path, "path"))
    state = _state_dict_from(read_weights_file(file, path if option else (*path, "path")), spec.key, file, path)
    state, notes = _rename_keys(state, spec)
    own = model.state_dict()
    state = _with_tied(own, state, notes)
    missing, unexpected = check_fits(
        own, state, str(file) if option else file.name, path, strict=spec.strict, hint=OTHER_SPEC_HINT.get(str(path[0]))
    )
    check_finite_weights(model, state, str(file), path)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    msg = f"loaded {len(own) - len(missing)}/{len(own)} tensors from {file}" + "".join(f" ({n})" for n in notes)
    if missing:
        msg += f"; kept from init: {summarise(missing)}"
    if unexpected:
        msg += f"; ignored from the file: {summarise(unexpected)}"
    logger.info(msg)


def _with_tied(own: dict[str, Tensor], state: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    """Fill the keys a file left out because the model ties them to a key it has (safetensors'
    ``save_model`` writes tied weights once): they load through the key they share storage with.

    >>> m = nn.Sequential(nn.Embedding(3, 2), nn.Linear(2, 3, bias=False))
    >>> m[1].weight = m[0].weight
    >>> sorted(_with_tied(m.state_dict(), {"0.weight": torch.zeros(3, 2)}, []))
    ['0.weight', '1.weight']
    """
    storages: dict[tuple[int, int], list[str]] = {}
    for key, value in own.items():
        if value.device.type != "meta" and value.numel():
            storages.setdefault((value.untyped_storage().data_ptr(), value.data_ptr()), []).append(key)
    filled = {}
    for keys in storages.values():
        present = [k for k in keys if k in state]
        if present and len(keys) > 1:
            filled.update({k: state[present[0]] for k in keys if k not in state})
    if filled:
        notes.append(f"tied to a key in the file: {summarise(list(filled))}")
    return {**state, **filled}


def _spec_file(name: str, base_dir: Path, roots: tuple[Path, ...], path: SpecPath) -> Path:
    """A weights file the spec names, under the folders it may read."""
    try:
        return FileAccess(Path(base_dir), tuple(roots)).resolve(name)
    except AccessRefused as err:
        err.path = path
        raise


def check_finite_weights(model: nn.Module, state: dict[str, Tensor], name: str, path: SpecPath) -> None:
    """CheckpointError if a parameter in ``state`` holds NaN or inf: training from it would
    only say that the loss is NaN. (Buffers may hold -inf: attention masks.)

    >>> check_finite_weights(nn.Linear(1, 1), {"bias": torch.tensor([float("nan")])}, "w.pt", ("init",))
    Traceback (most recent call last):
    netspec.errors.CheckpointError: <spec>: init: w.pt holds weights that are not finite (bias); refused
    """
    params = {n for n, _ in model.named_parameters()}
    bad = [k for k, v in state.items() if k in params and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{name} holds weights that are not finite ({summarise(bad, 3)}); refused", path=path)


OTHER_SPEC_HINT = {
    "--checkpoint": "was it saved by another spec? evaluate it with the spec it was trained with",
    "--resume": "was it saved by another spec? resume with the spec it was trained with, or start a new run "
    "from its weights with `init: {weights: {path: ..., strict: false}}`",
}


def check_fits(
    own: dict[str, Tensor],
    state: dict[str, Tensor],
    name: str,
    path: SpecPath,
    *,
    strict: bool,
    hint: str | None = None,
) -> tuple[list[str], list[str]]:
    """CheckpointError unless ``state`` fits the model's state_dict ``own``: every shared key has
    the same shape and (``strict``) the keys are the same. Returns (missing, unexpected) keys."""
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"`{key}` has shape {tuple(value.shape)} in {name} but {tuple(own[key].shape)} in the model",
                path=path,
                hint=hint
                or (
                    "a different number of classes or channels? "
                    "load with `strict: false` and drop the layer's weights from the file"
                ),
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        parts = [
            f"{len(missing)} model keys missing from the file ({summarise(missing)})" if missing else "",
            f"{len(unexpected)} file keys not in the model ({summarise(unexpected)})" if unexpected else "",
        ]
        close = did_you_mean(unexpected[0], own) if unexpected and len(unexpected) == len(missing) == 1 else None
        raise CheckpointError(
            f"{name} does not match the model: " + "; ".join(filter(None, parts)),
            path=path,
            hint=close or hint or "set `strict: false` to load what matches",
        )
    return missing, unexpected


def read_weights_file(file: Path, path: SpecPath) -> Any:
    """The object in a weights or checkpoint file (:func:`netspec.files.torchfile.load_torch_file`)."""
    return load_torch_file(file, path, CheckpointError, "weights file")


_STATE_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights")


def _state_dict_from(obj: Any, key: str | None, file: Path, path: SpecPath) -> dict[str, Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state_dict", path=path)
    if key is not None:
        if key not in obj:
            raise CheckpointError(
                f"{file} has no entry `{key}`; it has {', '.join(map(str, obj))}",
                path=(*path, "key"),
                hint=did_you_mean(key, map(str, obj)),
            )
        obj = obj[key]
    elif not _is_state_dict(obj):
        found = [k for k in _STATE_KEYS if k in obj and _is_state_dict(obj[k])]
        if not found:
            raise CheckpointError(
                f"no state_dict found in {file}; its entries are {', '.join(map(str, obj))}",
                path=path,
                hint="name the entry with `key:`",
            )
        obj = obj[found[0]]
    if not _is_state_dict(obj):
        raise CheckpointError(f"entry `{key}` of {file} is not a state_dict", path=(*path, "key"))
    return obj


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _rename_keys(state: dict[str, Tensor], spec: WeightsSpec) -> tuple[dict[str, Tensor], list[str]]:
    notes = []
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
        notes.append("removed DataParallel prefix `module.`")
    if spec.strip_prefix:
        state = {k[len(spec.strip_prefix) :] if k.startswith(spec.strip_prefix) else k: v for k, v in state.items()}
        notes.append(f"removed prefix `{spec.strip_prefix}`")
    if spec.add_prefix:
        state = {spec.add_prefix + k: v for k, v in state.items()}
        notes.append(f"added prefix `{spec.add_prefix}`")
    return state, notes


def standardize_statistics(file: Path, inputs: dict[str, tuple[int, ...]] | None, option: str = "--checkpoint") -> Any:
    """The ``Standardize`` statistics a netspec checkpoint holds (None in a plain state_dict
    file or a run without the transform), checked against the model's ``inputs`` (per-sample
    shapes): :data:`netspec.data.standardize.Statistics`."""
    return fitted_of(file, inputs, option)[0]


def fitted_of(
    file: Path, inputs: dict[str, tuple[int, ...]] | None, option: str = "--checkpoint"
) -> tuple[Any, list[int] | None]:
    """What a netspec checkpoint learnt from its training split besides the weights, checked:
    the Standardize statistics and the samples per class (``weight: balanced``); None for
    each one it does not hold (a plain state_dict holds neither)."""
    from ..data.standardize import check_statistics

    state = read_weights_file(Path(file), (option,))
    if not isinstance(state, dict) or _is_state_dict(state):
        return None, None
    counts = state.get("class_counts")
    if counts is not None and not (
        isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
    ):
        raise DataError(f"{file}: its `class_counts` are not counts of samples per class", path=(option,))
    try:
        stats = state.get("standardize")
        return (None if stats is None else check_statistics(stats, inputs, str(file))), counts
    except DataError as err:
        err.path = (option,)
        raise
