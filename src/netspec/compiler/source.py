"""Stage 1: text -> plain data with positions.

Loads YAML (and JSON, which YAML reads too) safely and remembers the line and column of
every value and key, so later stages can point errors at the exact place in the file.
Refuses alias bombs, very deep nesting and huge documents before they cost anything.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, SpecSyntaxError

Path_ = tuple[str | int, ...]

# Limits for untrusted documents. Generous for any real spec, small for an attack.
MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 200_000  # values after alias expansion: stops "billion laughs"
MAX_CHARS = MAX_BYTES  # characters of scalars and keys after alias expansion: a long string repeated


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) plus where each value and key came from."""

    data: Any
    file: str | None = None
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)
    overridden: dict[Path_, str] = field(default_factory=dict)  # path -> the --set item that set it
    roots: tuple[Path, ...] = ()  # data roots the user allowed besides base_dir (netspec.files.access)
    origins: dict[Path_, str] = field(default_factory=dict)  # path -> the base file it came from (extends.py)

    def locate(self, path: Path_, key: bool = False) -> Location:
        """Location of ``path``, or of its nearest ancestor that has one.

        With ``key=True`` prefer the position of the mapping key itself (for
        "unknown key" errors). A value merged from an ``extends`` base is located in that file.
        """
        path = self.raw_path(tuple(path))
        if key and path in self.key_positions:
            line, col = self.key_positions[path]
            return Location(self.origins.get(path, self.file), line, col)
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is not None:
                return Location(self.origins.get(path[:end], self.file), pos[0], pos[1])
        return Location(self.file)

    def raw_path(self, path: Path_) -> Path_:
        """Map a spec path onto the document as written.

        Spec paths follow the normalised node form (``nodes[1].from``,
        ``nodes[0].Linear.in_features``); the document may have the node written as
        ``b: {ReLU: {}, from: aa}`` (named) or ``{op: Linear, args: {...}}`` (explicit).
        Parts that cannot be found are kept as they are (``locate`` then falls back to
        the nearest ancestor).
        """
        if path in self.positions:
            return path
        out: list[str | int] = []
        cur = self.data
        for i, part in enumerate(path):
            if isinstance(cur, dict) and part in cur:  # noqa: SIM114 - one arm each, so mypy narrows `cur`
                out.append(part)
                cur = cur[part]
            elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
                out.append(part)
                cur = cur[part]
            elif isinstance(cur, dict) and cur.get("op") == part and "args" in cur:
                out.append("args")  # explicit form: {op: Linear, args: {...}}
                cur = cur["args"]
            elif part == "nodes" and isinstance(cur, dict) and (group := group_nodes(cur)) is not None:
                out += list(group[0])  # a group's node list as written: `downsample: [...]`
                cur = group[1]
            elif (
                isinstance(cur, dict)
                and len(holders := [k for k, v in cur.items() if isinstance(v, dict) and part in v]) == 1
            ):
                out += [holders[0], part]  # named form: {b: {ReLU: {}, from: aa}}
                cur = cur[holders[0]][part]
            else:
                return tuple(out) + tuple(path[i:])
        return tuple(out)


def nan_path(data: Any, path: Path_ = ()) -> Path_ | None:
    """The path of the first NaN in plain data (None: there is none). The loader refuses `.nan`
    where it is written; this finds one that came another way (``--set``, a dict from Python).

    >>> nan_path({"nodes": [{"Dropout": {"p": 0.5}}, {"Dropout": {"p": float("nan")}}]})
    ('nodes', 1, 'Dropout', 'p')
    """
    stack: list[tuple[Path_, Any]] = [(path, data)]
    while stack:  # depth first, in document order; no recursion: a dict from Python may nest deep
        here, value = stack.pop()
        if isinstance(value, float) and math.isnan(value):
            return here
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
        )
        stack.extend(reversed([((*here, k), v) for k, v in items]))
    return None


def group_nodes(node: Any) -> tuple[tuple[str, ...], list[Any]] | None:
    """Where a group node holds its node list as written, and the list.

    >>> group_nodes({"down": [{"Conv2d": {}}], "from": "x"})
    (('down',), [{'Conv2d': {}}])
    >>> group_nodes({"down": {"Sequential": []}})
    (('down', 'Sequential'), [])
    """
    if isinstance(node.get("nodes"), list):
        return ("nodes",), node["nodes"]
    for key, value in node.items():
        if isinstance(value, list) and key not in ("from", "freeze", "outputs"):
            return (key,), value
        if isinstance(value, dict) and isinstance(value.get("Sequential"), list):
            return (key, "Sequential"), value["Sequential"]
    return None


_CORE = "tag:yaml.org,2002:"
# Tags a spec may carry: the YAML core schema (what untagged values resolve to) plus
# timestamps; everything else -- python/*, set, omap, binary, !local tags -- is refused.
_ALLOWED_TAGS = {_CORE + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Builder:
    """Walks a composed YAML node tree into plain data, recording positions."""

    def __init__(self, loader: yaml.SafeLoader, file: str | None):
        self.loader = loader
        self.file = file
        self.count = 0
        self.chars = 0  # characters of the scalars and keys built so far, aliases expanded
        self.seen: set[int] = set()  # composed nodes already built: another visit is an alias
        self.aliased = False
        self.positions: dict[Path_, tuple[int, int]] = {}
        self.key_positions: dict[Path_, tuple[int, int]] = {}
        self._own_keys: set[Path_] = set()  # keys written in their mapping (not merged in)
        self._merged: dict[int, int] = {}  # mapping node -> how many of its pairs came from merges

    def _error(self, node: yaml.Node, message: str, hint: str | None = None) -> SpecSyntaxError:
        mark = node.start_mark
        return SpecSyntaxError(message, location=Location(self.file, mark.line + 1, mark.column + 1), hint=hint)

    def _count(self, node: yaml.Node) -> None:
        """Values are counted as aliases expand: a "billion laughs" is refused after MAX_VALUES."""
        self.count += 1
        if id(node) in self.seen:
            self.aliased = True
        self.seen.add(id(node))
        if self.count > MAX_VALUES:
            if self.aliased:
                raise self._error(
                    node,
                    f"the document expands to more than {MAX_VALUES:,} values through its "
                    "aliases (an alias bomb?); refused",
                )
            raise self._error(
                node,
                f"the document has more than {MAX_VALUES:,} values, over the limit for a spec; refused",
                hint="describe long chains with `repeat:` or blocks",
            )

    def _count_chars(self, node: yaml.Node, n: int) -> None:
        """Characters are counted as aliases expand: a long string repeated through aliases is cheap
        to hold (one string) but not to print or copy; refused after MAX_CHARS, as the text would be."""
        self.chars += n
        if self.chars > MAX_CHARS:
            why = " through its aliases (a long value repeated?)" if self.aliased else ""
            raise self._error(
                node,
                f"the document expands to more than {MAX_CHARS:,} characters{why}, over the limit for a spec; refused",
            )

    def build(self, node: yaml.Node, path: Path_ = (), depth: int = 0) -> Any:
        self._count(node)
        if isinstance(node, yaml.ScalarNode):
            self._count_chars(node, len(node.value))
        if depth > MAX_DEPTH:
            raise self._error(node, f"nesting deeper than {MAX_DEPTH} levels; refused")
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in _ALLOWED_TAGS:
            # Python tags (!!python/object/apply:...) and custom tags: never constructed.
            # Without this check a tagged sequence or mapping would be read as plain data.
            raise self._error(
                node,
                f"YAML tag `{_short_tag(node.tag)}` is not allowed in a spec; "
                "refused (specs are plain data: no Python objects, no custom tags)",
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node)
        if isinstance(value, float) and math.isnan(value):
            err = self._error(node, "`.nan` is not a number; refused", hint="write the number meant")
            err.path = path  # as written: `nodes[1].Dropout.p`, `optimizer.SGD.lr`
            raise err
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        """A mapping; ``<<: *anchor`` merges come first and may be overridden by the mapping's own
        keys (YAML's rule). A key written twice in the mapping itself is an error."""
        if id(node) not in self._merged:  # an aliased mapping is flattened once, built twice
            own = len([k for k, _ in node.value if k.tag != _CORE + "merge"])
            self.loader.flatten_mapping(node)  # merged pairs first, then the mapping's own
            self._merged[id(node)] = len(node.value) - own
        merged = self._merged[id(node)]
        out: dict[str, Any] = {}
        for i, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise self._error(key_node, "mapping keys must be strings")
            key = str(key) if not isinstance(key, str) else key
            self._count_chars(key_node, len(key))
            if key in out and i >= merged and path + (key,) in self._own_keys:
                first = self.key_positions.get(path + (key,))
                err = self._error(
                    key_node, f"duplicate key `{key}`" + (f" (first set at {first[0]}:{first[1]})" if first else "")
                )
                err.path = path + (key,)
                raise err
            if i >= merged:
                self._own_keys.add(path + (key,))
            self.key_positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            self.positions.pop(path + (key,), None)  # an overriding value: its position, not the merged one's
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out


def _reader_error(e: yaml.reader.ReaderError, text: str, file: str | None) -> SpecSyntaxError:
    """A character YAML refuses (control characters, ...), located by line and column."""
    before = text[: max(e.position, 0)]
    line = before.count("\n") + 1
    col = e.position - (before.rfind("\n") + 1) + 1
    return SpecSyntaxError(
        f"invalid YAML: character #x{e.character:04x} is not allowed in a spec file",
        location=Location(file, line, col),
        hint="remove control characters; a spec is plain UTF-8 text",
    )


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.2 and JSON do; YAML 1.1 wants ``1.0e-5``)."""


_SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _load_yaml(text: str, file: str | None) -> Document:
    try:
        loader = _SpecLoader(text)  # checks the characters of the whole text
    except yaml.reader.ReaderError as e:
        raise _reader_error(e, text, file) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecSyntaxError("the document is empty", location=Location(file, 1, 1))
        builder = _Builder(loader, file)
        data = builder.build(root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = e.problem or e.context or "invalid YAML"
        if "'\\t'" in problem or "\t" in problem:
            hint = "indent with spaces; YAML does not allow tabs for indentation"
        elif "block" in problem or "mapping values are not allowed" in problem or "indentation" in problem:
            hint = "check the indentation of this line and the one before"
        elif "expected ','" in problem or "flow" in problem:
            hint = "check the brackets and commas: [..] and {..} must be closed"
        else:
            hint = None
        raise SpecSyntaxError(f"invalid YAML: {problem}", location=loc, hint=hint) from None
    except yaml.reader.ReaderError as e:
        raise _reader_error(e, text, file) from None
    except yaml.YAMLError as e:
        raise SpecSyntaxError(f"invalid YAML: {e}", location=Location(file)) from None
    except RecursionError:
        raise SpecSyntaxError("document nesting is too deep; refused", location=Location(file)) from None
    finally:
        loader.dispose()
    return Document(data, file, builder.positions, builder.key_positions)


def _check_json(text: str, file: str | None) -> None:
    """JSON files get JSON's own rules (YAML would accept e.g. unquoted keys)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecSyntaxError(f"invalid JSON: {e.msg}", location=Location(file, e.lineno, e.colno)) from None


def _read_spec_file(name: str) -> bytes:
    """A spec file's bytes: a regular file of at most MAX_BYTES. The file is opened without
    blocking and checked before it is read: a FIFO would wait for a writer forever, and
    ``/dev/zero`` (which says it is empty) would never end."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecSyntaxError(f"no such file: {name}", location=Location(name)) from None
    except OSError as e:
        raise SpecSyntaxError(f"cannot read {name}: {e.strerror or e}", location=Location(name)) from None
    try:
        mode, size = os.fstat(fd).st_mode, os.fstat(fd).st_size
        if stat.S_ISDIR(mode):
            raise SpecSyntaxError(f"{name} is a directory, not a spec file", location=Location(name))
        if not stat.S_ISREG(mode):
            raise SpecSyntaxError(
                f"{name} is not a regular file (a device, FIFO or socket); a spec is a file", location=Location(name)
            )
        if size > MAX_BYTES:
            raise SpecSyntaxError(
                f"file is {size} bytes, over the {MAX_BYTES}-byte limit for a spec", location=Location(name)
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # the size can change after fstat: never read more
    except OSError as e:
        raise SpecSyntaxError(f"cannot read {name}: {e.strerror or e}", location=Location(name)) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise SpecSyntaxError(f"file is over the {MAX_BYTES}-byte limit for a spec", location=Location(name))
    return raw


def load_document(source: str | os.PathLike, *, text: str | None = None) -> Document:
    """Read a spec file (or text) into a :class:`Document`.

    ``source`` is a path; pass ``text=`` to parse a string (``source`` then only names it).

    >>> doc = load_document("inline.yaml", text="name: demo\\nnodes:\\n  - ReLU: {}\\n")
    >>> doc.data["name"], doc.locate(("nodes", 0))
    ('demo', Location(file='inline.yaml', line=3, col=5))
    """
    name = os.fspath(source)
    base_dir = Path(name).resolve().parent if text is None else Path.cwd()
    if text is None:
        raw = _read_spec_file(name)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SpecSyntaxError(f"not UTF-8 text (byte {e.start})", location=Location(name)) from None
    elif len(text) > MAX_BYTES:
        raise SpecSyntaxError(f"text is over the {MAX_BYTES}-byte limit for a spec", location=Location(name))
    if name.endswith(".json"):
        _check_json(text, name)
    doc = _load_yaml(text, name)
    doc.base_dir = base_dir
    return doc
