"""``import_model``: a Python ``nn.Module`` -> a spec that builds the same module.

The stages: load the module (``load.py``), trace it one module at a time and record values
(``trace.py``), convert each traced forward to spec nodes (``convert.py``, ``functions.py``),
make blocks of repeated classes (``blocks.py``, ``groups.py``), write YAML (``emit.py``), and
check the round trip (``check.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, SpecError
from .errors import ImportFailed, class_path


@dataclass
class Imported:
    """The written spec and what the importer found out on the way."""

    text: str
    name: str
    blocks: dict[str, int]  # block name -> number of uses
    notes: list[str] = field(default_factory=list)
    checked: Any = None  # check.Checked, unless the check was skipped
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file beside the spec -> its tensors by key

    def summary(self) -> str:
        """One line for the user: what was written."""
        uses = ", ".join(f"{b} x{n}" for b, n in self.blocks.items())
        return f"{self.name}: {len(self.blocks)} block(s)" + (f" ({uses})" if uses else "")


def import_model(
    target: str,
    *,
    args: dict[str, Any] | None = None,
    input_sizes: list[str] | None = None,
    allow_imports: list[str] | None = None,
    name: str | None = None,
    check: bool = True,
    max_params: int | None = None,
) -> Imported:
    """Trace ``MODULE:CALLABLE`` (called with ``args``) and write a spec for it; a model of more
    than ``max_params`` parameters (default 2e9) is refused before it is built.

    Raises :class:`netspec.SpecError` (one line: ``target: module.path: reason``) for what
    the spec language cannot express.

    >>> import_model("torch.nn:ReLU")
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: torch.nn:ReLU: the model is a torch.nn layer (torch.nn.modules.activation.ReLU): write it as a node
    """
    try:
        return _import(target, args or {}, input_sizes, allow_imports, name, check, max_params)
    except SpecError as e:
        raise e.with_location(Location(file=target)) from None  # where spec_from_module set none


def _import(
    target: str,
    args: dict[str, Any],
    input_sizes: list[str] | None,
    allow_imports: list[str] | None,
    name: str | None,
    check: bool,
    max_params: int | None = None,
) -> Imported:
    from .kinds import is_layer
    from .load import MAX_PARAMS, build, input_dtypes, input_shapes, load_callable, parse_target

    fn = load_callable(target, allow_imports)
    model = build(fn, args, target, max_params or MAX_PARAMS).eval()
    if is_layer(model):
        raise ImportFailed(f"the model is a torch.nn layer ({class_path(model)}): write it as a node")
    origin = f"`netspec import {_shown(target, args, input_sizes, allow_imports)}`"
    return spec_from_module(
        model,
        input_shapes(model, input_sizes, fn),
        dtypes=input_dtypes(model, input_sizes),
        name=name or parse_target(target)[1].split(".")[-1],
        origin=origin,
        check=check,
        label=target,
    )


def spec_from_module(
    model: Any,
    inputs: dict[str, tuple[int, ...]],
    *,
    name: str = "model",
    origin: str = "netspec.importer.spec_from_module",
    check: bool = True,
    label: str | None = None,
    dtypes: dict[str, str] | None = None,
) -> Imported:
    """Write a spec for a module instance; ``inputs`` gives the per-sample shape of each tensor
    argument of its forward, in order, and ``dtypes`` the dtype of those that are not float32
    (``{"tokens": "int64"}``). Errors are located at ``label`` (default: the class).

    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.fc = torch.nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return torch.sigmoid(self.fc(x))
    >>> imported = spec_from_module(Net(), {"x": (4,)}, name="net")
    >>> print(imported.text.split("nodes:")[1].strip())
    - fc: {Linear: {out_features: 2}}
      - sigmoid: {}
    outputs: [sigmoid]
    """
    try:
        return _spec_from_module(model, inputs, dtypes or {}, name, origin, check)
    except SpecError as e:
        raise e.with_location(Location(file=label or class_path(model))) from None


def _spec_from_module(
    model: Any, inputs: dict[str, tuple[int, ...]], dtypes: dict[str, str], name: str, origin: str, check: bool
) -> Imported:
    from .again import shared_modules
    from .blocks import make_blocks
    from .convert import Converter
    from .emit import spec_text
    from .kinds import is_layer, kind_of
    from .load import check_names, checked_inputs
    from .trace import pins, trace_model

    model = model.eval()
    if is_layer(model):
        raise ImportFailed(f"the model is a torch.nn layer ({class_path(model)}): write it as a node")
    if kind_of(model) == "custom":  # a Sequential or ModuleList: trace_model says why it is refused
        inputs, dtypes = checked_inputs(model, inputs, dtypes)
        check_names(model, inputs)
    traced = trace_model(model, inputs, dtypes=dtypes)
    root = Converter(traced).run()
    files = _sidecar(model, root.nodes, name)
    blocks = make_blocks(root)
    aliases: dict[str, str] = {}
    notes = grouped_notes(root.notes)
    header = [
        f"written by {origin} from {class_path(model)}",
        "a block per module class (or form of one); the comment after each says where it is used",
    ]
    header += [f"note: {n}" for n in notes]
    pinned = pins(traced)
    description = f"{class_path(model)}, imported with torch.fx"
    outputs = dict(zip(root.output_keys, root.outputs)) if root.output_keys is not None else root.outputs

    def write(pinned: list[str]) -> str:
        more = f" (and {len(pinned) - 1} more)" if len(pinned) > 1 else ""
        note = [f"note: the spec is right at its input sizes only, so it is pinned at them{more}"] if pinned else []
        declared = {k: _declared(v, dtypes.get(k), pinned[0] if pinned else None) for k, v in inputs.items()}
        return spec_text(name, header + note, description, declared, blocks, root.nodes, outputs, aliases)

    aliases.update(shared_modules(model, root.nodes, lambda: _module_keys(write([]), files)))
    imported = Imported(write(pinned), name, {b.name: len(b.uses) for b in blocks.values()}, notes, files=files)
    if check:
        from .check import check_round_trip

        imported.checked = check_round_trip(
            imported.text, model, inputs, dtypes=dtypes, pinned=bool(pinned), files=files
        )
        if imported.checked.fixed_by:  # right at the traced size only: a size became a number
            imported.text = write([imported.checked.fixed_by])
    return imported


def _module_keys(text: str, files: dict[str, dict[str, Any]]) -> set[str]:
    """The keys of the modules a spec builds (built on the meta device: no memory, no init)."""
    from ..api import compile_spec
    from .check import _beside

    try:
        with _beside(text, files) as load:
            module = compile_spec(load(), device="meta").module
    except SpecError:  # the round trip's check says why, as for any spec that does not compile
        return set()
    return {k for k, _ in module.named_modules(remove_duplicate=False)}


def _sidecar(model: Any, nodes: list[Any], name: str) -> dict[str, dict[str, Any]]:
    """The file beside the spec that its big buffers outside the state_dict are read from
    (``buffers.py``), named after the spec, ``{NAME.buffers.pt: {key: tensor}}``; its Buffer nodes,
    in bodies and groups too, are given that name. Empty when there are none."""
    from ..files.outputs import safe_name
    from ..nodes.kinds import BUFFER_OP
    from .buffers import SIDECAR, sidecar_tensors

    file, keys, todo = f"{safe_name(name, 'model')}.{SIDECAR}", set(), list(nodes)
    while todo:
        node = todo.pop()
        todo += [*(node.nodes or []), *(node.use.nodes if node.use else [])]
        if node.op == BUFFER_OP and isinstance(node.args, dict) and node.args.get("file") == SIDECAR:
            node.args["file"] = file
            keys.add(node.args["key"])
    return {file: sidecar_tensors(model, keys)} if keys else {}


def _declared(shape: tuple[int, ...], dtype: str | None, pinned_by: str | None) -> Any:
    """An input as the spec writes it: the short form where it can.

    >>> _declared((3, 8), None, None), _declared((4,), "int64", "the model: `if` on a size at net.py:7")
    ([3, 8], {'shape': [4], 'dtype': 'int64', 'pinned': {'shape': [4], 'by': 'the model: `if` on a size at net.py:7'}})
    """
    if dtype is None and pinned_by is None:
        return list(shape)
    out: dict[str, Any] = {"shape": list(shape)} | ({"dtype": dtype} if dtype else {})
    return out | ({"pinned": {"shape": list(shape), "by": pinned_by}} if pinned_by else {})


def grouped_notes(notes: list[tuple[str, str]]) -> list[str]:
    """(place, text) notes -> one line per text, naming the places.

    >>> grouped_notes([("a.sd", "left out"), ("b.sd", "left out"), ("c", "other")])
    ['left out (2 places: a.sd, b.sd)', 'other (c)']
    """
    places: dict[str, list[str]] = {}
    for where, text in notes:
        places.setdefault(text, []).append(where)
    out = []
    for text, ps in places.items():
        shown = ", ".join(ps[:3]) + (", ..." if len(ps) > 3 else "")
        out.append(f"{text} ({len(ps)} places: {shown})" if len(ps) > 1 else f"{text} ({shown})")
    return out


def _shown(
    target: str, args: dict[str, Any], input_sizes: list[str] | None, allow_imports: list[str] | None = None
) -> str:
    """The command's arguments that decide the spec, as they would be typed again.

    >>> _shown("net.py:Net", {"depth": 4}, ["5x8"], ["net.py"])
    'net.py:Net --allow-import net.py --args depth=4 --input-size 5x8'
    """
    words = [target] + [f"--allow-import {f}" for f in allow_imports or []]
    words += ["--args", *(f"{k}={v}" for k, v in args.items())] if args else []
    return " ".join(words + [f"--input-size {size}" for size in input_sizes or []])
