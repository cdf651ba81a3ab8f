"""What a node can name -- torch.nn's layers with their arguments, netspec's ops, torchvision's
models -- known without importing torch.

``netspec layers``, ``netspec schema`` and the question "is this node name a torchvision
model?" need only names and argument names, but finding them imports torch (seconds) and
torchvision (seconds more: it pulls in torch._dynamo and sympy). So the answer is worked out
once, by importing them, and written to a cache file that later runs read instead.

A stale file must never answer. The file's name is a digest of everything the answer depends
on: the versions of torch and torchvision as installed (read from their package metadata,
which imports neither), the Python version, and the text of netspec's own modules. An upgrade
or an edit gives another name, hence a fresh answer; without package metadata (a torch on
``PYTHONPATH`` only) nothing is cached and every run imports torch, as before. The folder is
``$NETSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/netspec``, else ``~/.cache/netspec``; a file
that cannot be read is worked out again, and one that cannot be written is not cached.

Modules that installed packages declare under the ``netspec.modules`` entry points are user
code, not in the file: :func:`layer_infos` imports them (and torch) when there are any.

>>> cat = catalog()
>>> cat.layers["Conv2d"].inferable, "cat" in cat.ops, "resnet18" in cat.models
(('in_channels',), True, True)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

__all__ = ["Catalog", "LayerInfo", "OpInfo", "catalog", "layer_infos", "cache_file", "torchvision_model_names"]

FORMAT = 1  # bump when the file's layout changes


@dataclass(frozen=True)
class LayerInfo:
    """A layer's constructor arguments, those inferred from the input, and whether it takes ``**kwargs``."""

    params: tuple[str, ...]
    inferable: tuple[str, ...]
    var_kwargs: bool


@dataclass(frozen=True)
class OpInfo:
    """An op's arguments and its one-line description."""

    params: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class Catalog:
    """torch.nn's layers, netspec's ops and torchvision's models, by name, in registry order."""

    layers: dict[str, LayerInfo]
    ops: dict[str, OpInfo]
    models: tuple[str, ...]


@functools.cache
def catalog() -> Catalog:
    """The catalog: read from the cache file when there is a current one, else worked out
    (importing torch and torchvision) and written there."""
    path = cache_file()
    if path is not None:
        try:
            return _from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable: work it out again
    found = _work_out()
    if path is not None and _imported_versions_match():
        _write(path, json.dumps(_to_json(found)))
    return found


def layer_infos() -> dict[str, LayerInfo]:
    """Every layer a spec can name: torch.nn's from the catalog, and the modules installed
    packages declare (imported, with torch, only when there are some)."""
    if not entry_points(group="netspec.modules"):
        return catalog().layers
    from .layers import LAYERS

    return {name: _layer_info(entry) for name, entry in LAYERS.items()}


def cache_file() -> Path | None:
    """Where the catalog of this torch, torchvision and netspec is kept; None when it cannot
    be keyed (a package without metadata, a netspec module that cannot be read).

    >>> cache_file().name.startswith("catalog-")
    True
    """
    parts = [f"format {FORMAT}", sys.version]
    for dist in ("torch", "torchvision"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            return None
    digest = hashlib.sha256("\n".join(parts).encode())
    try:
        for module in _keyed_modules():
            digest.update(module.name.encode() + b"\0" + module.read_bytes())
    except OSError:
        return None
    return _cache_dir() / f"catalog-{digest.hexdigest()[:24]}.json"


def _keyed_modules() -> list[Path]:
    """The modules whose text keys the cache: the front doors and the compiler's rooms (what the
    package root held before they moved into rooms; the training half does not shape the catalog).

    >>> sorted({p.parent.name for p in _keyed_modules()})
    ['compiler', 'files', 'netspec', 'nodes', 'views']
    """
    package = Path(__file__).resolve().parent.parent
    folders = [package] + [package / room for room in ("compiler", "nodes", "views", "files")]
    return sorted((p for folder in folders for p in folder.glob("*.py")), key=lambda p: p.relative_to(package))


def _cache_dir() -> Path:
    if os.environ.get("NETSPEC_CACHE_DIR"):
        return Path(os.environ["NETSPEC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "netspec"


def _work_out() -> Catalog:
    """The catalog from the libraries themselves (imports torch and torchvision)."""
    from .layers import torch_layer_types
    from .ops import OPS

    layers = {name: _layer_info(entry) for name, entry in torch_layer_types().items()}
    ops = {name: OpInfo(tuple(entry.params), entry.doc) for name, entry in OPS.items()}
    return Catalog(layers, ops, tuple(torchvision_model_names()))


def _layer_info(entry: Any) -> LayerInfo:
    return LayerInfo(tuple(entry.params), tuple(entry.inferable), entry.accepts_var_kwargs)


def _imported_versions_match() -> bool:
    """The torch and torchvision just imported are those the metadata names (not another copy
    earlier on the path), so the file's key describes its content."""
    import torch
    import torchvision

    # a wheel's metadata may leave out the local part of the version (2.14.1 for 2.14.1+cu130)
    return all(
        str(module.__version__).split("+")[0] == version(module.__name__).split("+")[0]
        for module in (torch, torchvision)
    )


def _to_json(cat: Catalog) -> dict[str, Any]:
    return {
        "layers": {n: asdict(i) for n, i in cat.layers.items()},
        "ops": {n: asdict(i) for n, i in cat.ops.items()},
        "models": list(cat.models),
    }


def _from_json(data: dict[str, Any]) -> Catalog:
    layers = {
        n: LayerInfo(tuple(i["params"]), tuple(i["inferable"]), bool(i["var_kwargs"]))
        for n, i in data["layers"].items()
    }
    ops = {n: OpInfo(tuple(i["params"]), str(i["doc"])) for n, i in data["ops"].items()}
    return Catalog(layers, ops, tuple(data["models"]))


def _write(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a file); a folder that cannot be written
    only means no cache."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def torchvision_model_names() -> list[str]:
    """torchvision's classification models, sorted (imports torchvision).

    >>> "resnet18" in torchvision_model_names()
    True
    """
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))
