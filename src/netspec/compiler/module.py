"""Stage 5: a typed graph -> a ``torch.fx.GraphModule`` with a generated, readable forward.

Submodules are registered in node order (so ``state_dict`` keys and parameter order follow
the spec), blocks and repeats become nested GraphModules, and the forward is plain Python
generated once by torch.fx: one line per node, with a shape comment, readable as ``.code``.
Nothing interprets the graph at call time.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import itertools
import math
import operator
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn

from ..errors import BuildError, SpecError, did_you_mean
from ..nodes import functional as nsf
from ..nodes.buffers import make_buffer
from ..nodes.model_nodes import family_of, truncate_model
from ..nodes.parameters import make_parameter
from ..nodes.zoo import set_submodule
from .dims import build_on_meta
from .keys import place
from .typed import TypedGraph, TypedNode


class NetspecTracer(fx.Tracer):
    """fx's tracer, keeping calls to netspec's own functions (``pad_to_match``, ...) as leaves.

    torch.fx rebuilds a pickled GraphModule (``torch.save(model)``, ``copy.deepcopy`` across
    processes) by re-tracing its code with the graph's tracer class; those functions look at
    real sizes, so they must not be traced into.
    """

    def __init__(self, autowrap_modules: tuple = (math,), autowrap_functions: tuple = ()) -> None:
        super().__init__(autowrap_modules=(*autowrap_modules, nsf), autowrap_functions=autowrap_functions)

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        """The code traced in eval mode: a model loaded from a pickle takes the `if self.training:`
        branches out (its graph, like the built model's, is eval mode's; training keeps state_dicts)."""
        was = getattr(root, "training", False)
        if isinstance(root, nn.Module):
            root.training = False
        try:
            return super().trace(root, concrete_args)
        finally:
            if isinstance(root, nn.Module):
                root.training = was


class _ReadableCodeGen(fx.graph.CodeGen):
    """fx's code, minus the ``; x = None`` bookkeeping, plus a shape comment per line; the lines
    of nodes computed only in training under ``if self.training:``, where they are in the graph
    (so random draws happen in the same order as in a hand-written forward), and
    ``if self.training: return <all outputs>`` before the graph's return (eval mode's outputs:
    what tools that read the graph itself, torch.export, see)."""

    def __init__(self, shapes: dict[str, str], train_vars: frozenset[str] = frozenset(), train_return: str = ""):
        super().__init__()
        self.shapes = shapes
        self.train_vars = train_vars
        self.train_return = train_return

    def _gen_python_code(self, nodes: Any, root_module: str, namespace: Any, **kwargs: Any) -> Any:
        code = super()._gen_python_code(nodes, root_module, namespace, **kwargs)
        lines: list[str] = []
        in_branch = False
        for line in code.src.split("\n"):
            line = _subscript(re.sub(r";\s+[\w\s=]+ = None$", "", line))
            m = re.match(r"^    (\w+) = ", line)
            if m and m.group(1) in self.train_vars:
                lines += [] if in_branch else ["    if self.training:"]
                line, in_branch = "    " + line, True
            elif line.startswith("    "):
                in_branch = False
            if m and m.group(1) in self.shapes:
                line = f"{line:<72}  # {self.shapes[m.group(1)]}"
            if self.train_return and line.startswith("    return "):
                lines += ["    if self.training:", f"        return {self.train_return}"]
            lines.append(line)
        code.src = "\n".join(lines)
        return code


_SLICE = re.compile(r"slice\((\w+|-?\d+), (\w+|-?\d+), (\w+|-?\d+)\)")
_TUPLE_INDEX = re.compile(r"^(    \w+ = \w+)\[\((.*?),?\)\]$")


def _subscript(line: str) -> str:
    """``pe[(slice(None, size, None), 0)]`` as Python writes it: ``pe[:size, 0]`` (an `index` op).

    >>> _subscript("    pos = pe[(slice(None, None, None), slice(1, size, None))]")
    '    pos = pe[:, 1:size]'
    """
    if "slice(" not in line and "[(" not in line:
        return line

    def part(m: re.Match[str]) -> str:
        start, stop, step = ("" if v == "None" else v for v in m.groups())
        return f"{start}:{stop}" + (f":{step}" if step else "")

    line = _SLICE.sub(part, line)
    return _TUPLE_INDEX.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", line)


def _class_name(name: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return out if out and out[0].isalpha() else "Net" + out


def _freeze(module: nn.Module, rule: bool | list[str] | None) -> list[str]:
    """Apply a node's ``freeze`` rule; returns the names frozen."""
    if not rule:
        return []
    frozen = []
    for name, p in module.named_parameters():
        if rule is True or any(fnmatch.fnmatchcase(name, pat) for pat in rule):
            p.requires_grad_(False)
            frozen.append(name)
    if rule is not True and not frozen:
        raise BuildError(
            f"`freeze` patterns {rule} match no parameter",
            hint="patterns are relative to the node, e.g. `layer1.*`; list them with --summary",
        )
    return frozen


def _on_meta() -> bool:
    return torch.get_default_device().type == "meta"


def _make(factory: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    """``factory(**kwargs)``; under ``build_module(device="meta")`` through ``build_on_meta``,
    which also builds the modules that compute their layout with real tensors."""
    return build_on_meta(factory, **kwargs) if _on_meta() else factory(**kwargs)


@contextlib.contextmanager
def _quiet_meta_load() -> Iterator[None]:
    """Loading weights into meta parameters checks names and shapes and copies nothing, which
    is what a meta build wants: torch's warning that the copy is a no-op is left out."""
    with warnings.catch_warnings():
        if _on_meta():
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
        yield


def _build_zoo(node: TypedNode, log: list[str]) -> nn.Module:
    plan = node.zoo
    assert plan is not None
    family = family_of(plan.builder)
    model = _make(functools.partial(family.build, plan.builder), **plan.kwargs)
    if plan.weights is not None:
        try:
            with _quiet_meta_load():
                log += [f"{node.name}: {line}" for line in family.load(model, plan.weights, plan.strict)]
        except SpecError as e:  # CheckpointError: point at the node's `weights`
            e.path, e.node = node.path + (node.op, "weights"), node.name
            raise
    try:
        frozen = _freeze(model, node.freeze)  # freeze the backbone; replaced heads stay trainable
    except BuildError as e:
        e.path, e.node = node.path + ("freeze",), node.name
        raise
    if plan.truncate is not None:
        model = truncate_model(model, plan.truncate, node.path, node.name)
    for target, rnode in plan.replace:
        assert rnode.layer_cls is not None
        set_submodule(model, target, _make(rnode.layer_cls, **rnode.args))
    if frozen:  # count after replacing: a new head under a frozen name is trainable
        still = [n for n, p in model.named_parameters() if not p.requires_grad]
        log.append(
            f"{node.name}: froze {len(still)} parameter tensors ({', '.join(sorted({f.split('.')[0] for f in still}))})"
        )
    return model


def _build_child(node: TypedNode, log: list[str]) -> nn.Module | None:
    if node.kind == "layer":
        assert node.layer_cls is not None
        module = _make(node.layer_cls, **node.args)
    elif node.kind in ("block", "repeat", "group"):
        assert node.sub is not None
        module = build_module(node.sub, log=log)
    elif node.kind == "zoo":
        return _build_zoo(node, log)
    else:
        return None
    _frozen(node, module, log)
    return module


def _frozen(node: TypedNode, module: nn.Module, log: list[str]) -> None:
    try:
        frozen = _freeze(module, node.freeze)
    except BuildError as e:
        e.path, e.node = node.path + ("freeze",), node.name
        raise
    if frozen:
        log.append(f"{node.name}: froze {len(frozen)} parameter tensors")


def _emit(g: fx.Graph, root: nn.Module, node: TypedNode, env: dict[str, fx.Node], log: list[str]) -> fx.Node:
    """Add one node to the fx graph (and its module or parameter to ``root``)."""
    if node.kind == "param":
        param = make_parameter(node.args)
        if node.freeze:
            param.requires_grad_(False)
            log.append(f"{node.name}: frozen")
        root.register_parameter(node.name, param)
    elif node.kind == "buffer":
        root.register_buffer(node.name, make_buffer(node.args), persistent=node.args["persistent"])
    elif node.kind != "shared":  # `same_as` calls a module another node added
        child = _build_child(node, log)
        if child is not None:
            place(root, node.name, child)  # at its key: `convs.0` inside a holder `convs`
    return _call(g, node, env)


def _call(g: fx.Graph, node: TypedNode, env: dict[str, fx.Node]) -> fx.Node:
    """The fx node computing ``node`` (its module or parameter is the root's already)."""
    args = tuple(env[r] for r in node.inputs)
    if node.kind in ("param", "buffer"):
        return g.get_attr(node.name)
    kwargs: dict[str, Any] = {
        k: env[v] if isinstance(v, str) else tuple(env[x] for x in v) for k, v in node.kw_inputs.items()
    }
    if node.kind == "shared":  # `same_as`: the other node's module, called again
        return g.call_module(node.args["same_as"], args, kwargs)
    if node.op_entry is not None and node.kind == "op":
        fn, fargs, fkw = node.op_entry.emit(list(args), **node.args)
        return g.call_function(fn, fargs, fkw)
    return g.call_module(node.name, args, kwargs)


def _graph(graph: TypedGraph, emit: Callable[[fx.Graph, TypedNode, dict[str, fx.Node]], fx.Node]) -> fx.Graph:
    """The fx graph of a typed graph, its nodes made by ``emit``, with a shape comment per line
    (the graph returns every output; the code returns eval mode's only, see ``_ReadableCodeGen``)."""
    g = fx.Graph(tracer_cls=NetspecTracer)
    env: dict[str, fx.Node] = {}
    for name in graph.inputs:
        env[name] = g.placeholder(name)
    shapes: dict[str, str] = {}
    train_nodes: list[fx.Node] = []
    for node in graph.nodes:
        last = next(iter(reversed(g.nodes)), None)
        out = emit(g, node, env)
        out.name = node.var if node.name not in env else out.name
        env[node.name] = out
        shapes[out.name] = node.shape
        if node.training_only:  # the fx nodes it added (an `index` adds its sizes first)
            train_nodes += list(itertools.takewhile(functools.partial(operator.is_not, last), reversed(g.nodes)))
    outs = [env[ref] for _, ref in graph.eval_outputs]
    if graph.output_type == "dict":
        g.output({ext: env[ref] for ext, ref in graph.eval_outputs})
    else:
        g.output(outs[0] if len(outs) == 1 else tuple(outs))
    train_vars = frozenset(n.name for n in train_nodes)
    g.set_codegen(_ReadableCodeGen(shapes, train_vars, _train_return(graph, env) if train_vars else ""))
    return g


def _train_return(graph: TypedGraph, env: dict[str, fx.Node]) -> str:
    """What the code returns in training mode: every output (those of training only too).

    >>> t = TypedGraph("t", {}, [], [("logits", "fc"), ("aux", "a")])
    >>> _train_return(t, {"fc": fx.Graph().placeholder("fc"), "a": fx.Graph().placeholder("aux_1")})
    '(fc, aux_1)'
    """
    if graph.output_type == "dict":
        return "{" + ", ".join(f"{ext!r}: {env[ref].name}" for ext, ref in graph.outputs) + "}"
    names = [env[ref].name for _, ref in graph.outputs]
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"


def _drop_unread(g: fx.Graph) -> None:
    """Leave out the nodes no output reads (those only a loss reads): the public forward does
    not compute them, though the module holds their weights (those of training only stay: the
    code returns them when training)."""
    train_vars: frozenset[str] = getattr(g._codegen, "train_vars", frozenset())
    for node in reversed(list(g.nodes)):
        if node.op not in ("placeholder", "output") and not node.users and node.name not in train_vars:
            g.erase_node(node)


def tie_parameters(root: nn.Module, nodes: list[TypedNode]) -> None:
    """Make each ``tie`` of a node real: the node's parameter becomes the other's
    (``self.fc.weight = self.emb.weight``); both names stay in the state_dict, as torch keeps them.

    >>> root = nn.Module(); root.emb, root.fc = nn.Embedding(5, 3), nn.Linear(3, 5)
    >>> node = TypedNode("fc", "layer", "Linear", ("nodes", 1), [], {}, None, tie={"weight": "emb.weight"})
    >>> tie_parameters(root, [node]); root.fc.weight is root.emb.weight
    True
    """
    for node in nodes:
        for own, other in (node.tie or {}).items():
            path = node.path + ("tie", own)
            target = _parameter_at(root, other, path, node.name, "the parameter to tie to")
            mine = _parameter_at(root, f"{node.name}.{own}", path, node.name, f"`{node.name}`'s parameter")
            if mine.shape != target.shape:
                raise BuildError(
                    f"`tie` makes `{node.name}.{own}` {tuple(mine.shape)} the parameter `{other}` {tuple(target.shape)}; "
                    "tied parameters have the same shape",
                    path=path,
                    node=node.name,
                    hint="check the sizes of both layers (an output Linear tied to an Embedding needs its in_features "
                    "equal to the embedding_dim)",
                )
            owner, _, leaf = f"{node.name}.{own}".rpartition(".")
            setattr(root.get_submodule(owner), leaf, target)


def _parameter_at(root: nn.Module, name: str, path: tuple, node: str, what: str) -> nn.Parameter:
    """The parameter ``name`` (a dotted path) of ``root``, or a BuildError naming the close ones."""
    try:
        return root.get_parameter(name)
    except AttributeError:
        names = [n for n, _ in root.named_parameters(remove_duplicate=False)]
        raise BuildError(
            f"`tie`: {what} `{name}` is not a parameter",
            path=path,
            node=node,
            hint=did_you_mean(name, names)
            or f"parameters: {', '.join(names[:8])}" + (" ..." if len(names) > 8 else ""),
        ) from None


def build_module(
    graph: TypedGraph, *, log: list[str] | None = None, device: torch.device | str | None = None
) -> fx.GraphModule:
    """Build real modules for every node and generate the forward.

    ``device`` is where parameters and buffers are made (default: torch's default device).
    ``"meta"`` builds the whole module without memory or initialisation, for checks and
    summaries (``netspec validate``, ``netspec compile``); weights files are still read and
    checked against the model.

    >>> import torch
    >>> from netspec.compiler.spec import load_spec
    >>> from netspec.compiler.shapes import infer_shapes
    >>> spec = load_spec("t.yaml", text="name: t\\ninputs: {x: [4]}\\nnodes:\\n  - Linear: {out_features: 2}\\n")
    >>> m = build_module(infer_shapes(spec))
    >>> m(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """
    if device is not None:
        with torch.device(device):
            return build_module(graph, log=log)
    log = log if log is not None else []
    root = nn.Module()
    g = _graph(graph, lambda g, node, env: _emit(g, root, node, env, log))
    tie_parameters(root, graph.nodes)
    if graph.extras:
        _drop_unread(g)
    gm = fx.GraphModule(root, g, class_name=_class_name(graph.name))
    if graph.extras:  # fx keeps only what the forward reads: the loss's nodes' weights too, in order
        gm._modules.clear()
        gm._modules.update(root._modules)
        gm._parameters.clear()
        gm._parameters.update(root._parameters)
        gm._buffers.clear()
        gm._buffers.update(root._buffers)
    # a buffer that is not persistent stays so (torch 2.11's GraphModule copies every buffer as persistent)
    gm._non_persistent_buffers_set = {b for b in root._non_persistent_buffers_set if b in gm._buffers}
    gm.netspec_graph = graph  # type: ignore[assignment]  # for summaries and tools
    return gm


def loss_view(gm: fx.GraphModule) -> fx.GraphModule:
    """A module sharing ``gm``'s weights whose forward returns a dict of its outputs and of the
    nodes a loss reads (``TypedGraph.extras``): what training calls, while ``gm``'s own forward
    (predict, export) stays as the spec's outputs say.

    >>> from netspec.compiler.spec import load_spec
    >>> from netspec.compiler.shapes import infer_shapes
    >>> spec = load_spec("t.yaml", text="name: t\\ninputs: {x: [4]}\\nnodes:\\n  - h: {Linear: {out_features: 3}}"
    ...                  "\\n  - Linear: {out_features: 2}\\nloss: {terms: {t: {L1Loss: {}, from: h}}}\\n")
    >>> gm = build_module(infer_shapes(spec))
    >>> sorted(loss_view(gm)(torch.zeros(5, 4)))
    ['h', 'linear']
    """
    graph: TypedGraph = gm.netspec_graph  # type: ignore[assignment]
    extras = [(name, name) for name in graph.extras]
    full = TypedGraph(graph.name, graph.inputs, graph.nodes, graph.outputs + extras, "dict", graph.input_twins)
    view = _LossView(gm, _graph(full, _call), class_name=_class_name(graph.name) + "LossView")
    view.__dict__["_model"] = gm  # not a child: the same weights, listed once
    view.netspec_graph = full  # type: ignore[assignment]
    return view


class _LossView(fx.GraphModule):
    """A loss view is in its model's mode (``model.eval()`` leaves out the heads of training
    only from the view too): its ``training`` is the model's."""

    @property
    def training(self) -> bool:
        model = self.__dict__.get("_model")
        return model.training if model is not None else self.__dict__.get("_training", True)

    @training.setter
    def training(self, mode: bool) -> None:
        model = self.__dict__.get("_model")
        if model is None:
            self.__dict__["_training"] = mode
        else:
            model.training = mode
