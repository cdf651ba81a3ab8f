"""``extends:``: a spec built on base spec files, with overrides (MMEngine's ``_base_``).

::

    extends: timm_resnet34.yaml          # relative to this file; a list merges several in order
    name: timm_resnet34_fashion
    data: {train: {source: FashionMNIST, root: ../data}}

    extends: {base: timm_resnet34.yaml, replace: [data]}   # this spec's `data` replaces the base's

The base's document is merged under the spec's before validation: mappings merge key by key
(the spec wins; keys keep the base's order, new ones follow), lists and scalars replace, so
``nodes`` is replaced whole; the mappings ``replace`` names (dotted paths) replace the base's
instead of merging into them. Every value keeps the file and line it was written at, so an
error in a value from the base points into the base file.

Each base file is read once per spec, however often it is listed (a diamond a -> b, c -> d reads
d once), and the bases are bounded: chains of at most :data:`MAX_EXTENDS` files,
:data:`MAX_BASE_FILES` files of :data:`MAX_BASE_BYTES` bytes in all, :data:`MAX_MERGED_VALUES`
values merged. A missing base, a folder or FIFO named as one (found by ``stat``: a FIFO is never
opened), a cycle (a.yaml -> b.yaml -> a.yaml) and each limit are one-line errors at the
``extends`` that names the base.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AccessRefused, SpecValidationError, did_you_mean
from ..files.access import FileAccess, file_kind
from .source import MAX_BYTES, Document, Path_, load_document

EXTENDS = "extends"
MAX_EXTENDS = 8  # files in one chain of bases: more is a mistake, not a design
MAX_BASE_FILES = 32  # different base files under one spec
MAX_BASE_BYTES = MAX_BYTES  # the bases together: no more than one spec file may hold
MAX_MERGED_VALUES = 1_000_000  # values walked by all the merges: bounds a base listed many times
SUFFIXES = (".yaml", ".yml", ".json")


def base_path(name: str, spec_dir: Path, access: FileAccess) -> Path:
    """The file ``extends: name`` means, relative to the folder of the file that says it: a file
    the spec may read (under the first spec's folder or a data root, symlinks resolved), like
    every file a spec names (:mod:`netspec.files.access`).

    >>> base_path("base.yaml", Path("/specs"), FileAccess(Path("/specs")))
    PosixPath('/specs/base.yaml')
    >>> base_path("../etc/passwd.yaml", Path("/specs"), FileAccess(Path("/specs")))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    netspec.errors.AccessRefused: <spec>: `../etc/passwd.yaml` (it resolves to /etc/passwd.yaml) is outside ...
    """
    return access.check(Path(spec_dir) / name, shown=name)


@dataclass
class _Loading:
    """What one ``resolve_extends`` has loaded so far: each base once (a diamond, or a base listed
    twice, is one load), and the totals its limits are checked against."""

    access: FileAccess
    loaded: dict[Path, tuple[Document, int]] = field(default_factory=dict)  # file -> (resolved, height)
    files: int = 0
    bytes: int = 0
    merged: int = 0


def resolve_extends(doc: Document, chain: tuple[Path, ...] = (), access: FileAccess | None = None) -> Document:
    """``doc`` with its bases merged under it (and theirs under them); unchanged without ``extends``.

    >>> doc = resolve_extends(Document({"name": "m", "nodes": ["ReLU"]}, "m.yaml"))
    >>> doc.data
    {'name': 'm', 'nodes': ['ReLU']}
    """
    if not isinstance(doc.data, dict) or EXTENDS not in doc.data:
        return doc
    access = access or FileAccess(Path(doc.base_dir), tuple(doc.roots))  # the first spec's folder and roots
    return _resolve(doc, chain, _Loading(access))[0]


def _resolve(doc: Document, chain: tuple[Path, ...], loading: _Loading) -> tuple[Document, int]:
    """``doc`` resolved, and its height: the files in its longest chain of bases, itself included."""
    if not isinstance(doc.data, dict) or EXTENDS not in doc.data:
        return doc, 1
    here = _file_of(doc)
    chain = (*chain, here) if here is not None else chain
    names, replace = _parse(doc)
    merged: Document | None = None
    height = 1
    for name, path in names:
        file = _base_file(doc, name, path, chain, loading.access)
        if file in loading.loaded:  # loaded before: its chain must still fit under this one
            base, base_height = loading.loaded[file]
            if len(chain) + base_height > MAX_EXTENDS:
                raise _too_deep(doc, path, name)
        else:
            base, base_height = _resolve(_load_base(doc, name, file, path, chain, loading), chain, loading)
            loading.loaded[file] = base, base_height
        height = max(height, base_height + 1)
        merged = base if merged is None else _merge_counted(merged, base, doc, path, loading)
    assert merged is not None  # _parse refuses an empty list
    child = Document(
        {k: v for k, v in doc.data.items() if k != EXTENDS},
        doc.file,
        doc.positions,
        doc.key_positions,
        doc.base_dir,
        doc.overridden,
        roots=doc.roots,
        origins=dict(doc.origins),
    )
    return _merge_counted(merged, child, doc, (EXTENDS,), loading, replace), height


def _merge_counted(
    base: Document,
    child: Document,
    doc: Document,
    path: Path_,
    loading: _Loading,
    replace: set[Path_] | frozenset[Path_] = frozenset(),
) -> Document:
    """``merge``, once the values it walks still fit under MAX_MERGED_VALUES in all."""
    loading.merged += len(base.positions) + len(child.positions)  # one position per value
    if loading.merged > MAX_MERGED_VALUES:
        raise _error(
            doc,
            path,
            f"`extends` merges more than {MAX_MERGED_VALUES:,} values in all, over the limit for a spec with its bases",
            "list each base once; merge large bases into one",
        )
    return merge(base, child, replace)


def _file_of(doc: Document) -> Path | None:
    if doc.file is None or doc.file.startswith("<"):
        return None
    return Path(doc.file).resolve()


def _parse(doc: Document) -> tuple[list[tuple[str, Path_]], set[Path_]]:
    """The base names with their spec paths, and the paths whose mappings replace the base's."""
    at: Path_ = (EXTENDS,)
    value = doc.data[EXTENDS]
    replace: list[Any] = []
    if isinstance(value, dict):
        unknown = [k for k in value if k not in ("base", "replace")]
        if unknown or "base" not in value:
            raise _error(
                doc,
                at + (unknown[0],) if unknown else at,
                "`extends` as a mapping has `base` (a file or a list) and `replace` (a list of dotted keys)",
                key=bool(unknown),
                hint="e.g. `extends: {base: base.yaml, replace: [data]}`",
            )
        replace = value.get("replace") or []
        value, at = value["base"], at + ("base",)
    names = (
        [(value, at)]
        if isinstance(value, str)
        else [(v, at + (i,)) for i, v in enumerate(value)]
        if isinstance(value, list) and value
        else []
    )
    if not names or any(not isinstance(n, str) or not n for n, _ in names):
        raise _error(
            doc, at, f"`extends` names a base spec file or a list of them, got {value!r}", "e.g. `extends: base.yaml`"
        )
    return names, _replace_paths(doc, replace)


def _replace_paths(doc: Document, replace: Any) -> set[Path_]:
    """`replace: [data, train.metrics]` -> {("data",), ("train", "metrics")}, each a key the spec sets."""
    at = (EXTENDS, "replace")
    if not isinstance(replace, list) or not all(isinstance(r, str) for r in replace):
        raise _error(doc, at, "`replace` is a list of dotted keys, e.g. [data] or [data.train]")
    paths = set()
    for i, item in enumerate(replace):
        path: Path_ = tuple(int(p) if p.isdigit() else p for p in item.split("."))
        if not _has(doc.data, path):
            raise _error(
                doc,
                at + (i,),
                f"`replace` names `{item}`, which this spec does not set",
                did_you_mean(item, [k for k in doc.data if k != EXTENDS]),
            )
        paths.add(path)
    return paths


def _has(data: Any, path: Path_) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _base_file(doc: Document, name: str, path: Path_, chain: tuple[Path, ...], access: FileAccess) -> Path:
    """The base ``name`` names: a regular spec file the spec may read, not already in ``chain``.
    Checked with ``stat`` alone: opening a FIFO to look at it would block."""
    try:
        file = Path(os.path.realpath(base_path(name, Path(doc.base_dir), access)))
    except AccessRefused as err:
        raise _error(doc, path, err.message, err.hint) from None
    if file.suffix not in SUFFIXES:
        raise _error(doc, path, f"base spec `{name}` is not a .yaml, .yml or .json file")
    what = file_kind(file)
    if what == "missing":
        near = (
            sorted(p.name for p in file.parent.glob("*") if p.suffix in SUFFIXES and p.name != file.name)
            if file.parent.is_dir()
            else []
        )
        raise _error(
            doc,
            path,
            f"base spec `{name}` does not exist (looked for {file})",
            did_you_mean(file.name, near) or "paths are relative to the file that says `extends`",
        )
    if what is not None:
        raise _error(
            doc, path, f"base spec `{name}` is {what}, not a spec file ({file})", "name a .yaml, .yml or .json file"
        )
    if file in chain:
        cycle = " -> ".join(p.name for p in (*chain[chain.index(file) :], file))
        raise _error(doc, path, f"`extends` makes a cycle: {cycle}", "a spec cannot build on itself")
    if len(chain) >= MAX_EXTENDS:
        raise _too_deep(doc, path, name)
    return file


def _load_base(
    doc: Document, name: str, file: Path, path: Path_, chain: tuple[Path, ...], loading: _Loading
) -> Document:
    """The base file read, once the count of bases and their bytes still fit the limits."""
    if loading.files >= MAX_BASE_FILES:
        raise _error(
            doc,
            path,
            f"base spec `{name}` would be base file number {loading.files + 1}; a spec may "
            f"build on at most {MAX_BASE_FILES} files",
            "merge some of the bases into one",
        )
    size = file.stat().st_size
    if loading.bytes + size > MAX_BASE_BYTES:
        raise _error(
            doc,
            path,
            f"base spec `{name}` ({size:,} bytes) takes the bases over {MAX_BASE_BYTES:,} "
            "bytes in all, the limit for the bases of a spec",
        )
    loading.files += 1
    loading.bytes += size
    return load_document(file)


def _too_deep(doc: Document, path: Path_, name: str) -> SpecValidationError:
    return _error(
        doc,
        path,
        f"`extends` chain is longer than {MAX_EXTENDS} files (at base spec `{name}`)",
        "merge some of the bases into one",
    )


def _error(doc: Document, path: Path_, message: str, hint: str | None = None, key: bool = False) -> SpecValidationError:
    return SpecValidationError(message, path=path, hint=hint, key=key, location=doc.locate(path, key=key))


# ---- merging ----------------------------------------------------------------------------


def merge(base: Document, child: Document, replace: set[Path_] | frozenset[Path_] = frozenset()) -> Document:
    """``child`` over ``base``: the merged data, each value located in the file it came from;
    the mappings at the ``replace`` paths are the child's alone.

    >>> a = Document({"train": {"epochs": 3, "seed": 1}, "nodes": [1, 2]}, "a.yaml", {("train", "seed"): (3, 9)})
    >>> b = Document({"train": {"epochs": 5}, "nodes": [3]}, "b.yaml", {("train", "epochs"): (2, 10)})
    >>> m = merge(a, b)
    >>> m.data, str(m.locate(("train", "seed"))), str(m.locate(("train", "epochs")))
    ({'train': {'epochs': 5, 'seed': 1}, 'nodes': [3]}, 'a.yaml:3:9', 'b.yaml:2:10')
    >>> merge(a, b, {("train",)}).data["train"]
    {'epochs': 5}
    """
    came_from: dict[Path_, Document] = {}
    data = _merge(base.data, child.data, (), (base, child), replace, came_from)
    out = Document(data, child.file, base_dir=child.base_dir, roots=child.roots)
    for path, doc in came_from.items():
        if path in doc.positions:
            out.positions[path] = doc.positions[path]
        if path in doc.key_positions:
            out.key_positions[path] = doc.key_positions[path]
        origin = doc.origins.get(path, doc.file)
        if origin != child.file and origin is not None:
            out.origins[path] = origin
    return out


def _merge(
    base: Any, child: Any, path: Path_, docs: tuple[Document, Document], replace: Any, came_from: dict[Path_, Document]
) -> Any:
    b, c = docs
    if not (isinstance(base, dict) and isinstance(child, dict)) or path in replace:
        return _take(child, path, c, came_from)
    came_from[path] = c
    out: dict[str, Any] = {}
    for key, value in base.items():
        if key in child:
            out[key] = _merge(value, child[key], path + (key,), docs, replace, came_from)
        else:
            out[key] = _take(value, path + (key,), b, came_from)
    for key, value in child.items():
        if key not in base:
            out[key] = _take(value, path + (key,), c, came_from)
    return out


def _take(value: Any, path: Path_, doc: Document, came_from: dict[Path_, Document]) -> Any:
    """Mark ``value`` and every part of it as written in ``doc``."""
    came_from[path] = doc
    if isinstance(value, dict):
        for k, v in value.items():
            _take(v, path + (k,), doc, came_from)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _take(v, path + (i,), doc, came_from)
    return value


def merge_hint(doc: Document, path: Path_) -> str | None:
    """For a mistake in a value merged from a base into a mapping the spec also writes (a
    `source` changed, its old options left behind): how to replace that mapping instead.

    >>> doc = merge(Document({"data": {"n": 8}}, "base.yaml"), Document({"data": {"dim": 4}}, "child.yaml"))
    >>> merge_hint(doc, ("data", "n"))
    '`data.n` comes from base.yaml and was merged with the `data` of child.yaml; to replace that mapping whole, write `extends: {base: ..., replace: [data]}`'
    """
    path = doc.raw_path(tuple(path))
    if path not in doc.origins:
        return None
    for end in range(len(path) - 1, 0, -1):
        if path[:end] not in doc.origins and all(isinstance(p, str) for p in path[:end]):
            at = ".".join(map(str, path[:end]))
            return (
                f"`{'.'.join(map(str, path))}` comes from {Path(doc.origins[path]).name} and was merged with the "
                f"`{at}` of {Path(doc.file or '').name}; to replace that mapping whole, write "
                f"`extends: {{base: ..., replace: [{at}]}}`"
            )
    return None
