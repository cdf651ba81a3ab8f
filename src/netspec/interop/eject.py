"""``netspec export --format python``: a compiled model -> one standalone ``.py`` file holding
plain ``nn.Module`` classes that build the same submodules under the same attribute names (so a
netspec checkpoint's state_dict loads strictly, keys as they are) and whose forwards are the
code fx generated, one line per node with its shape comment. The file imports torch (and
torchvision when the spec uses its models), never netspec.

How the model becomes classes:

* the root module -> a class named after the spec, with a ``load(path)`` class method;
* a block -> a class; the uses of one block that differ only in constructor values (channels,
  strides) share one class whose ``__init__`` takes those values as parameters, named after the
  block's spec parameters where they match (``out``, ``planes``); uses that differ in structure
  (a ``when`` that drops a node) get a class each (``BasicBlock``, ``BasicBlock2``);
* a group or a repeat that is a plain chain -> ``nn.Sequential``; a repeat whose copies also
  take keyword inputs (a padding mask) -> an ``nn.ModuleList`` subclass with a loop;
* a torchvision node -> the torchvision builder, then its freeze, truncation and replacements.

No spec text reaches the file raw (see :mod:`netspec.interop.pysource`): names are checked, and
the ones that would hide what the file imports or calls (a block `OrderedDict`, a block
parameter `nn`) are renamed; strings are literals; docstrings and comments are escaped. The
finished file is checked statement by statement (:func:`netspec.interop.audit.audit`) before anything
runs it.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from ..nodes.kinds import TIMM_PREFIX
from . import ExportError
from .audit import audit
from .eject_buffers import Found, buffer_line, buffers_file
from .eject_classes import Child, ClassDef, Draft, all_drafts, classes_of_type, type_order
from .pysource import (
    FREEZE_HELPER,
    LOAD_HELPER,
    LOAD_METHOD,
    Call,
    ListOf,
    assign_child,
    attr_ref,
    child_assignment,
    comment,
    docstring,
    flat,
    forward_source,
    free_name,
    helper_sources,
    identifier,
    layer_call,
    literal,
    plain_name,
    render,
)

__all__ = ["eject", "Draft", "CHILD_WRITERS", "RESERVED"]

#: names the file imports, defines or calls beside its classes: a class, constructor argument or
#: local variable of the file is never one of them (the spec's names are renamed: `OrderedDict2`).
RESERVED = frozenset(
    {
        *dir(builtins),
        *keyword.kwlist,
        "torch",
        "nn",
        "F",
        "math",
        "fnmatch",
        "OrderedDict",
        "freeze",
        "load_state",
        "inf",
        "nan",
        "torchvision",
        "timm",
        "annotations",
        "self",
        "cls",
        "load_buffer",
        "load_buffers",
        "BUFFERS_FILE",
        "functools",
        "Path",
        "Any",
    }
)


# ---------------------------------------------------------------------------------------------
# The model -> drafts
# ---------------------------------------------------------------------------------------------


def _layer_func(cls: type, imports: set[str]) -> str:
    """``nn.Conv2d`` for torch.nn's layers; a custom layer is imported from its module."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"nn.{cls.__name__}"
    if cls.__module__ == "__main__" or cls.__module__.startswith("netspec") or "." in cls.__qualname__:
        raise ExportError(
            f"layer {cls.__qualname__} (from {cls.__module__}) cannot be imported by a standalone file",
            hint="move it into an importable module of your own",
        )
    imports.add(f"from {cls.__module__} import {cls.__qualname__}")
    return cls.__qualname__


def _freeze_lines(ref: str, rule: Any, imports: set[str]) -> tuple[str, ...]:
    """The spec's ``freeze`` of a node: all of it, or parameters by name pattern."""
    if not rule:
        return ()
    if rule is True:
        return (f"{ref}.requires_grad_(False)  # freeze: true",)
    imports.add("freeze")
    return (f"freeze({ref}, {literal(list(rule), ref)})",)


def _parameter(node: Any) -> Call:
    """``nn.Parameter(nn.init.normal_(torch.empty(32, 64), std=0.02))``."""
    empty = Call("torch.empty", tuple((None, s) for s in node.args["shape"]), len(node.args["shape"]))
    init = Call(f"nn.init.{node.args['init']}", ((None, empty), *node.args["init_args"].items()), 1)
    extra = (("requires_grad", False),) if node.freeze else ()
    return Call("nn.Parameter", ((None, init), *extra), 1)


def _is_chain(graph: Any) -> bool:
    """A sub-graph that is one input through modules in a row, returning the last: nn.Sequential."""
    if len(graph.inputs) != 1 or not graph.nodes or len(graph.outputs) != 1:
        return False
    prev = next(iter(graph.inputs))
    for node in graph.nodes:
        if (
            node.kind not in ("layer", "block", "group", "repeat")
            or node.kw_inputs
            or node.freeze
            or node.inputs != [prev]
        ):
            return False
        prev = node.name
    return graph.outputs[0][1] == prev


def _is_loop(node: Any) -> bool:
    """A repeat whose copies read the previous copy plus the same keyword inputs (a padding mask)."""
    graph = node.sub
    prev = next(iter(graph.inputs))
    for n in graph.nodes:
        if (
            n.kind not in ("layer", "block", "group", "repeat")
            or n.freeze
            or n.inputs != [prev]
            or n.kw_inputs != graph.nodes[0].kw_inputs
        ):
            return False
        prev = n.name
    return True


def _child_value(node: Any, module: nn.Module, where: str, imports: set[str]) -> Any:
    """The constructor call (or the Draft) that builds one node's module."""
    if node.kind == "layer":
        return layer_call(_layer_func(node.layer_cls, imports), node.layer_cls, node.args)
    if node.kind in ("group", "repeat") and _is_chain(node.sub):
        items = [_child_value(n, module.get_submodule(n.name), f"{where}.{n.name}", imports) for n in node.sub.nodes]
        if [n.name for n in node.sub.nodes] == [str(i) for i in range(len(items))]:
            return Call("nn.Sequential", tuple((None, v) for v in items), len(items))
        imports.add("OrderedDict")
        pairs = ListOf(tuple(Call("", ((None, n.name), (None, v)), 2) for n, v in zip(node.sub.nodes, items)))
        return Call("nn.Sequential", ((None, Call("OrderedDict", ((None, pairs),), 1)),), 1)
    assert isinstance(module, fx.GraphModule), f"{where}: {node.kind} is not a GraphModule"
    return draft(
        module,
        node.sub,
        where,
        node.args if node.kind == "block" else {},
        loop=node.kind == "repeat" and _is_loop(node),
    )


def _model_lines(node: Any, module: nn.Module, ref: str, imports: set[str]) -> tuple[str, ...]:
    """A torchvision or timm model node: the builder, then freeze, truncate and replace in the
    order netspec applies them. Its weights come from the checkpoint (the spec's `weights` file
    is not read)."""
    plan = node.zoo
    # a local of __init__: never a name the file uses there (classes start with a capital)
    var = node.name if node.name.isidentifier() and node.name.isascii() and node.name[:1].islower() else "model"
    var = free_name(var, RESERVED | _helper_names())
    kwargs = ", ".join(
        f"{identifier(k, f'{node.name}: the argument')}={literal(v, node.name)}" for k, v in plan.kwargs.items()
    )
    if plan.builder.startswith(TIMM_PREFIX):
        imports.add("import timm")
        name = plan.builder[len(TIMM_PREFIX) :]
        lines = [f"{var} = timm.create_model({name!r}{', ' if kwargs else ''}{kwargs})"]
    else:
        imports.add("import torchvision")
        lines = [f"{var} = torchvision.models.{identifier(plan.builder, 'torchvision model')}({kwargs})"]
    if plan.weights is not None:
        lines[0] += "  " + comment(f"weights: the checkpoint's (the spec loads {plan.weights.name})")
    lines += _freeze_lines(var, node.freeze, imports)
    if plan.truncate is not None:
        imports.add("OrderedDict")
        keep = list(dict(module.named_children())).index(plan.truncate) + 1
        lines.append(
            f"{var} = nn.Sequential(OrderedDict(list({var}.named_children())[:{keep}]))"
            f"  {comment(f'truncate: {plan.truncate}')}"
        )
    for target, rnode in plan.replace:
        *parents, last = [p for p in re.split(r"[.\[\]]+", target) if p]
        parent_ref = var
        for p in parents:
            parent_ref = f"{parent_ref}[{int(p)}]" if p.isdigit() else attr_ref(parent_ref, p)
        value = render(layer_call(_layer_func(rnode.layer_cls, imports), rnode.layer_cls, rnode.args), node.name)
        if last.isdigit():
            lines.append(f"{parent_ref}[{int(last)}] = {value}")
        else:
            head, tail = child_assignment(parent_ref, last)
            lines.append(head + value + tail)
    return (*lines, assign_child(ref, node.name, var))


def _helper_names() -> set[str]:
    """The module-level names of netspec.nodes.functional and .initializers (copied into a file
    as needed): no class or constructor argument of the file may hide one."""
    from ..nodes import functional, initializers

    return {n for module in (functional, initializers) for n in vars(module) if not n.startswith("__")}


#: node kind -> writer of the statements that build a node made by a library: (node, its module,
#: "self", imports) -> lines. A library-backed kind adds its writer here.
CHILD_WRITERS: dict[str, Callable[[Any, nn.Module, str, set[str]], tuple[str, ...]]] = {"zoo": _model_lines}


def _child(node: Any, gm: fx.GraphModule, where: str, imports: set[str], found: Found) -> Child | None:
    """What a node adds to its module's ``__init__``: a submodule, a parameter, a buffer (what it
    needs beside its line goes into ``found``), or nothing (an op)."""
    if node.kind in ("op", "shared"):  # a shared node calls another's module: nothing of its own
        return None
    if node.kind == "param":
        return Child(node.name, _parameter(node))
    if node.kind == "buffer":
        return Child(node.name, lines=(buffer_line(node, gm.get_buffer(node.name), where, found),))
    path = f"{where}.{node.name}".lstrip(".")
    after = _freeze_lines(attr_ref("self", node.name), node.freeze, imports)
    if node.kind in CHILD_WRITERS:
        return Child(node.name, lines=CHILD_WRITERS[node.kind](node, gm.get_submodule(node.name), "self", imports))
    if node.kind not in ("layer", "block", "group", "repeat"):
        raise ExportError(
            f"node `{path}` is a {node.kind} node, which cannot be written as Python yet",
            hint="add a writer for it to netspec.interop.eject.CHILD_WRITERS",
        )
    return Child(node.name, _child_value(node, gm.get_submodule(node.name), path, imports), after=after)


def _ref(dotted: str, where: str) -> str:
    """``self.blocks[0].cpe``: a module's key as torch code reads it (numbered children indexed)."""
    out = "self"
    for part in dotted.split("."):
        out = f"{out}[{int(part)}]" if part.isdigit() else attr_ref(out, identifier(part, where))
    return out


def _tie_line(node: Any, own: str, other: str) -> str:
    """``self.decoder.weight = self.encoder.weight``: a node's ``tie``, as torch code writes it."""
    where = f"{node.name}: tie"
    *owner, leaf = f"{node.name}.{own}".split(".")
    head, tail = child_assignment(_ref(".".join(owner), where), identifier(leaf, where))
    return head + _ref(other, where) + tail + "  " + comment("tied: one parameter, both state_dict keys")


def _alias_lines(aliases: dict[str, str]) -> tuple[str, ...]:
    """``self.cpe1 = self.blocks[0].cpe``: the spec's ``aliases``, one module under two names
    (written after every child and tie: the names are of modules built above)."""
    lines = []
    for name, key in aliases.items():
        where = f"aliases.{name}"
        holder, _, leaf = name.rpartition(".")
        head, tail = child_assignment(_ref(holder, where) if holder else "self", identifier(leaf, where))
        lines.append(head + _ref(key, where) + tail + "  " + comment("one module, both names' state_dict keys"))
    return tuple(lines)


def draft(
    gm: fx.GraphModule, graph: Any, where: str = "", params: dict[str, Any] | None = None, loop: bool = False
) -> Draft:
    """The draft of one GraphModule and, through its children, of every class instance below it."""
    imports: set[str] = set()
    found = Found()
    children = [c for c in (_child(n, gm, where, imports, found) for n in graph.nodes) if c is not None]
    ties = tuple(_tie_line(n, own, other) for n in graph.nodes for own, other in (n.tie or {}).items())
    if ties:  # after every child: the parameter tied to may belong to a later node
        children.append(Child("", lines=ties))
    forward, functions = ("", {}) if loop else forward_source(gm)
    if loop:
        forward = _loop_forward(graph)
    if found.buffers:
        imports.add("load_buffer")
    functions = {**functions, **found.functions}
    out = Draft(type(gm).__name__, where, dict(params or {}), children, forward, functions, imports, loop)
    out.buffers = found.buffers
    return out


def _loop_forward(graph: Any) -> str:
    """The forward of a repeat with keyword inputs: each copy reads the last and the same inputs."""
    chain, *extra = [identifier(n, "input") for n in graph.inputs]
    first = graph.nodes[0]
    names = {identifier(n, "input") for v in first.kw_inputs.values() for n in ([v] if isinstance(v, str) else v)}
    kws = ", ".join(
        f"{identifier(k, 'keyword input')}={v if isinstance(v, str) else '(' + ', '.join(v) + ',)'}"
        for k, v in first.kw_inputs.items()
    )
    layer = free_name("layer", {chain, *extra, *names, *RESERVED})  # the loop must not overwrite an input
    call = f"        {chain} = {layer}({chain}{', ' + kws if kws else ''})"
    return (
        f"def forward(self, {', '.join([chain, *extra])}):\n"
        f"    for {layer} in self:\n"
        f"{call:<72}  {comment(str(graph.nodes[-1].shape))}\n"
        f"    return {chain}\n"
    )


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------


def _wrap(text: str, indent: str = "", width: int = 100) -> str:
    import textwrap

    return textwrap.fill(
        " ".join(text.split()), width=width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )


def _class_doc(c: ClassDef, spec: Any, type_name: str) -> str:
    """What a class stands for in the spec, where it is used, whose shapes its comments show."""
    block = (spec.blocks or {}).get(type_name)
    if c.base == "nn.ModuleList":
        what = "Copies of a node in a row, each also given the same keyword inputs."
    elif block is not None:
        what = f"The spec's block `{type_name}`" + (f": {block.description}" if block.description else ".")
    else:
        what = f"The spec's `{c.uses[0].rsplit('.', 1)[-1]}` nodes as one module."
    uses = ", ".join(f"`{u}`" for u in c.uses[:4]) + (f" and {len(c.uses) - 4} more" if len(c.uses) > 4 else "")
    shapes = f"; the shape comments are those of `{c.uses[0]}`" if len(c.uses) > 1 else ""
    return f"{what} Used as {uses}{shapes}."


def _doc_text(c: ClassDef) -> str:
    """The class's docstring as it reads (wrapped, indented)."""
    return _wrap(c.doc, "    ").strip()


def _class_text(c: ClassDef) -> str:
    lines = [f"class {c.name}({c.base}):", "    " + docstring(_doc_text(c)), ""]
    if c.base == "nn.Module":
        sig = ", ".join(["self", *(f"{n}: {h}" if h else n for n, h in c.args)])
        lines += [
            f"    def __init__({sig}) -> None:",
            "        super().__init__()",
            *("        " + s for s in c.body),
            "",
        ]
    lines += ["    " + s if s else "" for s in c.forward.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def _import_block(imports: set[str], helper_imports: list[str]) -> str:
    """The file's imports: standard library, then torch (and torchvision), as isort would put them."""
    standard = ("from math", "from typing", "import functools", "from pathlib")
    std = sorted(
        {"import fnmatch" for i in imports if i == "freeze"}
        | {"from collections import OrderedDict" for i in imports if i == "OrderedDict"}
        | {i for i in helper_imports if i.startswith(standard)}
    )
    third = {"import torch", "from torch import nn"} | {i for i in imports if i.startswith(("import ", "from "))}
    third |= {i for i in helper_imports if not i.startswith(standard)}
    head = "from __future__ import annotations\n\n"
    third_party = sorted(third, key=lambda i: (i.startswith("from"), i))  # `import x` before `from x import y`
    return head + ("\n".join(std) + "\n\n" if std else "") + "\n".join(third_party) + "\n"


def _usage(compiled: Any, cls: str, module_name: str, checkpoint: str) -> str:
    """The docstring's example: load, then call with the spec's inputs (each line Python as it reads)."""
    graph = compiled.graph
    outs = [ext for ext, _ in graph.outputs]
    plain = all(plain_name(o) and o not in RESERVED for o in outs)
    target = "outputs" if graph.output_type == "dict" or not plain else ", ".join(outs)
    shapes = "; ".join(
        f"{n}: {_io_shape(graph, n)} {str(v.dtype).removeprefix('torch.')}" for n, v in graph.inputs.items()
    )
    return (
        f"    from {flat(module_name)} import {cls}\n\n"
        f"    model = {cls}.load({checkpoint!r})  # eval mode\n"
        f"    {target} = model({', '.join(graph.inputs)})  # {shapes}\n"
    )


def _io_shape(graph: Any, name: str) -> str:
    from ..compiler.dims import shape_str

    probe = graph.input_probe(name) if name in graph.inputs else graph.probe_of(name)
    return shape_str(probe.value, probe.twin)


def _header(compiled: Any, cls: str, module_name: str, checkpoint: str, command: str, libraries: list[str]) -> str:
    """The module docstring's text (the caller writes it with :func:`docstring`)."""
    import torch

    from .. import __version__

    spec, graph = compiled.spec, compiled.graph
    title = f"{spec.name}: {' '.join((spec.description or '').split())}".rstrip(": ")
    needs = f"torch and {' and '.join(libraries)} (for its models)" if libraries else "torch only"
    outputs = ", ".join(f"{flat(ext)} {_io_shape(graph, ref)}" for ext, ref in graph.outputs)
    about = (
        f"A standalone PyTorch module. It needs {needs}, never netspec. Its attribute names are the spec's "
        "node names, so the state_dict of a netspec checkpoint loads as it is."
    )
    made = f"Written by netspec {__version__} (torch {torch.__version__.split('+')[0]}) with:"
    return (
        f"{_wrap(title)}\n\n{_wrap(about)}\n\n{made}\n\n    {flat(command)}\n\nUse it so:\n\n"
        f"{_usage(compiled, cls, module_name, checkpoint)}\n"
        f"{_wrap('Outputs: ' + outputs + '.')}\n"
    )


def eject(
    compiled: Any,
    *,
    module_name: str = "model",
    checkpoint: str = "best.pt",
    command: str = "",
    standardize: dict[str, dict[str, Any]] | None = None,
    sidecar: dict[str, torch.Tensor] | None = None,
) -> str:
    """The source of a standalone ``.py`` file that rebuilds ``compiled``'s module without netspec.

    >>> from netspec.api import compile_spec
    >>> c = compile_spec({"name": "tiny", "inputs": {"x": [3]}, "nodes": [{"fc": {"Linear": {"out_features": 2}}}]})
    >>> print(eject(c).split("class Tiny(nn.Module):")[1].split("@classmethod")[0].strip())
    \"\"\"The network of the spec `tiny`.\"\"\"
    <BLANKLINE>
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)
    <BLANKLINE>
        def forward(self, x):
            fc = self.fc(x)                                                       # (B, 2)
            return fc

    ``standardize`` (a checkpoint's Standardize statistics) puts a layer holding them in front
    of the inputs: the file takes raw features, as ``netspec predict`` does. ``sidecar`` receives the buffers the file reads from ``{module_name}_buffers.pt`` (see
    :mod:`netspec.interop.eject_buffers`); without it such a buffer is refused.
    """
    root = draft(compiled.module, compiled.graph)
    root.children += [Child("", lines=_alias_lines(compiled.spec.aliases))] if compiled.spec.aliases else []
    drafts = all_drafts(root)
    imports = set().union(*(d.imports for d in drafts))
    helper_imports, helpers = helper_sources({k: v for d in drafts for k, v in d.functions.items()})
    helpers += [FREEZE_HELPER] if "freeze" in imports else []
    if "load_buffer" in imports:
        helper_imports, helpers = buffers_file(drafts, module_name, helper_imports, helpers, sidecar)
    helpers.append(LOAD_HELPER)
    avoid = _taken_names([i for i in imports if i.startswith(("import ", "from "))] + helper_imports)
    classes = _classes(compiled, drafts, avoid)
    if standardize:
        classes.insert(-1, _standardize_inputs(classes[-1], compiled, standardize, avoid | {c.name for c in classes}))
    root_class = classes[-1]
    command = command or f"netspec export {compiled.spec.name}.yaml --format python"
    doc = _header(
        compiled,
        root_class.name,
        module_name,
        checkpoint,
        command,
        [lib for lib in ("torchvision", "timm") if f"import {lib}" in imports],
    )
    import_block = _import_block(imports, helper_imports)
    parts = [docstring(doc) + "\n\n" + import_block, *helpers, *(_class_text(c) for c in classes[:-1])]
    from ..training.checkpoint import CHECKPOINT_FORMAT

    load = LOAD_METHOD.format(name=root_class.name, checkpoint_format=CHECKPOINT_FORMAT)
    parts.append(_class_text(root_class) + "\n" + load)
    source = "\n\n".join(p.rstrip("\n") + "\n" for p in parts)
    audit(source, doc, {c.name: _doc_text(c) for c in classes}, import_block, helpers)
    return source


def _taken_names(import_lines: list[str]) -> set[str]:
    """Names no class of the file may take: reserved ones, the helpers', what the imports bind."""
    bound = {
        a.asname or a.name.split(".")[0]
        for line in import_lines
        for stmt in ast.parse(line).body
        if isinstance(stmt, (ast.Import, ast.ImportFrom))
        for a in stmt.names
    }
    return set(RESERVED) | _helper_names() | bound


def _classes(compiled: Any, drafts: list[Draft], avoid: set[str]) -> list[ClassDef]:
    """The file's classes, each after the ones it builds; the root's last. No class is named like
    a name of ``avoid`` (the file's imports and helpers, builtins)."""
    root = drafts[0]
    if any(d.type_name == root.type_name for d in drafts[1:]) or root.type_name in avoid:
        root.type_name += "Model"  # a block named like the spec; a spec named `f` or `OrderedDict`
    by_type: dict[str, list[Draft]] = {}
    for d in drafts:
        by_type.setdefault(d.type_name, []).append(d)
    classes: list[ClassDef] = []
    taken: set[str] = set()
    for type_name in type_order(drafts):
        for c in classes_of_type(by_type[type_name], taken, avoid):
            root_doc = f"The network of the spec `{compiled.spec.name}`."
            c.doc = _class_doc(c, compiled.spec, type_name) if c.uses[0] else root_doc
            classes.append(c)
    assert classes[-1].uses == [""], "the root class comes last"
    return classes


def _standardize_inputs(root: ClassDef, compiled: Any, stats: dict[str, dict[str, Any]], taken: set[str]) -> ClassDef:
    """The class of a standardising layer (its statistics written into the file as literals and
    kept in buffers the state_dict leaves out, so the checkpoint still loads strictly), and the
    root class changed to build one per standardised input and call it first in its forward."""
    name, n = "Standardize", 2
    while name in taken:
        name, n = f"Standardize{n}", n + 1
    helper = ClassDef(
        name,
        "nn.Module",
        "The spec's Standardize transform, fitted on the training split: (x - shift) / scale, per "
        "feature. Its statistics are written here, not in the state_dict.",
        [("shift", "list"), ("scale", "list"), ("dtype", "torch.dtype")],
        [
            'self.register_buffer("shift", torch.tensor(shift, dtype=dtype), persistent=False)',
            'self.register_buffer("scale", torch.tensor(scale, dtype=dtype), persistent=False)',
        ],
        "def forward(self, x):\n    return (x - self.shift) / self.scale  # (B, ...) per feature\n",
        ["standardize"],
    )
    tree = ast.parse(root.forward).body[0]
    assert isinstance(tree, ast.FunctionDef)
    args = [a.arg for a in tree.args.args[1:]]  # the forward's inputs, in the spec's order
    children = {n for n, _ in compiled.module.named_children()} | set(vars(compiled.module))
    lines = root.forward.splitlines()
    first = tree.body[0].lineno - 1  # the forward's first statement
    calls = []
    for arg, input_name in zip(args, compiled.graph.inputs):
        if input_name not in stats:
            continue
        attr, k = f"standardize_{identifier(input_name, 'input')}", 2
        while attr in children:
            attr, k = f"standardize_{identifier(input_name, 'input')}_{k}", k + 1
        children.add(attr)
        shift, scale = stats[input_name]["shift"], stats[input_name]["scale"]
        where = f"Standardize of `{input_name}`"
        dtype = literal(shift.dtype, where)
        root.body.append(
            f"self.{attr} = {name}({literal(shift.tolist(), where)}, {literal(scale.tolist(), where)}, {dtype})"
        )
        calls.append(f"    {arg} = self.{attr}({arg})  # the spec's Standardize (statistics of the training split)")
    root.forward = "\n".join(lines[:first] + calls + lines[first:]) + "\n"
    root.doc += " Its inputs are standardised first, with the statistics the training split gave."
    return helper
