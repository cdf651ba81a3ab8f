"""Stage 4: a DAG -> a typed graph: concrete arguments, inferred sizes, every output shape.

Shapes are found by running each layer on *meta* tensors (no memory, no compute), so every
torch.nn layer is covered without a hand-written shape rule; merges get explicit checks
first, so a mismatch is reported at the node with both shapes. Blocks and repeats are
instantiated here, recursively, because their ``when`` choices and arithmetic depend on
parameters and input shapes.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from .errors import (BuildError, GraphError, ResourceError, ShapeError, SpecError, did_you_mean,
                     format_path)
from .expr import ShapeInfo, substitute
from .graph import Dag, DagNode, resolve
from .layers import BATCH_FIRST_DEFAULT, INFERRED, LayerType, layer_registry
from .ops import OpType, op_registry
from .spec import BlockSpec, NodeSpec, Spec
from .zoo import (ZOO_EXTRA_ARGS, get_submodule, incoming_shape_of, local_weights_file, set_submodule,
                  zoo_builder, zoo_params)

META_BATCH = 2  # BatchNorm refuses a batch of 1 in training; shapes never depend on it
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


@dataclass
class Options:
    """Compile options that are not part of the spec."""

    base_dir: Path = field(default_factory=Path.cwd)
    roots: tuple[Path, ...] = ()              # data roots: weights files are read only here and in base_dir
    max_params: int = 2_000_000_000           # refuse bigger models before allocating
    max_activation_bytes: int = 16 * 2 ** 30  # per sample, forward activations (fp32)
    max_nodes: int = 20_000                   # instantiated nodes (repeats and blocks expanded)


@dataclass
class ZooPlan:
    """How to build a torchvision node for real (the meta pass validated it)."""

    builder: str
    kwargs: dict[str, Any]
    weights: Path | None
    strict: bool
    truncate: str | None
    replace: list[tuple[str, "TypedNode"]]


@dataclass
class TypedNode:
    """A node with everything needed to build it, and its output value on meta tensors."""

    name: str
    kind: str                      # layer | op | block | zoo | repeat
    op: str
    path: tuple[str | int, ...]
    inputs: list[str]
    args: dict[str, Any]           # constructor kwargs (layer) / op kwargs
    value: Any                     # meta tensor or tuple of them (batch = META_BATCH)
    notes: list[str] = field(default_factory=list)
    freeze: bool | list[str] | None = None
    sub: "TypedGraph | None" = None
    zoo: ZooPlan | None = None
    layer_cls: type[nn.Module] | None = None
    op_entry: OpType | None = None
    params: int = 0


@dataclass
class TypedGraph:
    """A graph with shapes: the input of module building and of the summary."""

    name: str
    inputs: dict[str, Any]         # name -> meta tensor
    nodes: list[TypedNode]
    outputs: list[tuple[str, str]]
    output_type: str = "tuple"

    def node(self, name: str) -> TypedNode:
        return next(n for n in self.nodes if n.name == name)

    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)


def shape_str(value: Any) -> str:
    """``(B, 64, 572, 572)`` for a meta tensor; tuples are shown element-wise."""
    if isinstance(value, torch.Tensor):
        dims = ["B" if i == 0 and value.dim() > 0 and value.shape[0] == META_BATCH else str(d)
                for i, d in enumerate(value.shape)]
        return "(" + ", ".join(dims) + ")"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shape_str(v) for v in value) + ")"
    return type(value).__name__


def per_sample(value: Any) -> str:
    """``64x572x572`` -- the per-sample shape, as in error messages."""
    if isinstance(value, torch.Tensor):
        return "x".join(map(str, value.shape[1:])) or "scalar"
    return shape_str(value)


def _env_shapes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ShapeInfo(tuple(v.shape[1:])) for k, v in values.items() if isinstance(v, torch.Tensor)}


# ---- argument binding --------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _adapter(hint: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(hint)
    except Exception:  # torch hints may include Tensor or callables: not checkable here
        return None


def _type_name(hint: Any) -> str:
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    text = text.replace("typing.", "").replace("torch.", "")
    return text if len(text) < 60 else text[:57] + "..."


def _check_type(name: str, value: Any, hint: Any, where: str, path: tuple) -> Any:
    adapter = _adapter(hint) if hint is not None and hint is not inspect.Parameter.empty else None
    if adapter is None or isinstance(value, str) and "$" in value:
        return value
    try:
        adapter.validate_python(value)
    except ValidationError:
        raise BuildError(f"{where}: `{name}` must be {_type_name(hint)}, got {value!r}", path=path) from None
    except Exception:
        return value
    return value


def _kwargs_from(raw: Any, params: list[str], positional_ok: list[str], where: str, path: tuple) -> dict[str, Any]:
    """Mapping -> kwargs; a single value -> the first positional parameter; a list -> in order."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    if not positional_ok:
        raise BuildError(f"{where} takes no positional arguments; use a mapping", path=path)
    if isinstance(raw, list) and len(positional_ok) > 1 and len(raw) > 1:
        if len(raw) > len(positional_ok):
            raise BuildError(f"{where} takes at most {len(positional_ok)} positional arguments "
                             f"({', '.join(positional_ok)}), got {len(raw)}", path=path)
        return dict(zip(positional_ok, raw))
    return {positional_ok[0]: raw}


def bind_layer_args(entry: LayerType, raw: Any, in_values: list[Any], env: Mapping[str, Any],
                    path: tuple, node: str) -> tuple[dict[str, Any], list[str]]:
    """Validate a layer's arguments against its constructor and infer what can be inferred."""
    where = entry.name
    inferable = entry.inferable
    free = [p for p in entry.params if p not in inferable]
    if isinstance(raw, list) and inferable and len(raw) > 1:
        raise BuildError(f"{where}: positional arguments are ambiguous because netspec infers "
                         f"{', '.join(inferable)}", path=path, node=node,
                         hint="use a mapping, e.g. {" + ", ".join(f"{p}: ..." for p in free[:2]) + "}")
    kwargs = substitute(_kwargs_from(raw, list(entry.params), free, where, path), env, path)
    notes: list[str] = []
    for key in kwargs:
        if key not in entry.params and not entry.accepts_var_kwargs:
            raise BuildError(f"{where} has no argument `{key}`", path=path + (key,), node=node,
                             hint=did_you_mean(key, list(entry.params)) or
                             f"its arguments: {', '.join(entry.params)}")
    for key, value in kwargs.items():
        kwargs[key] = _check_type(key, value, entry.hints.get(key), where, path + (key,))
    shapes = [tuple(v.shape[1:]) for v in in_values if isinstance(v, torch.Tensor)]
    for key in inferable:
        if not shapes or (len(shapes[0]) == 0 and key != "in2_features"):
            continue
        try:
            inferred = INFERRED[key](shapes)
        except IndexError:
            continue
        if key in kwargs:
            if kwargs[key] != inferred and not (key == "normalized_shape"):
                raise ShapeError(f"{where} has {key}={kwargs[key]} but its input is {per_sample(in_values[0])}, "
                                 f"which gives {key}={inferred}", path=path + (key,), node=node,
                                 hint=f"remove `{key}` (netspec infers it) or fix the layer before")
        else:
            kwargs[key] = inferred
            notes.append(f"{key}={inferred} (inferred)")
    if entry.name in BATCH_FIRST_DEFAULT and "batch_first" in entry.params and "batch_first" not in kwargs:
        kwargs["batch_first"] = True
        notes.append("batch_first=True (netspec default)")
    missing = [p for p in entry.required if p not in kwargs]
    if missing:
        raise BuildError(f"{where} needs `{missing[0]}`", path=path, node=node,
                         hint=f"e.g. {entry.name}: {{{missing[0]}: ...}}")
    return kwargs, notes


def bind_op_args(entry: OpType, raw: Any, env: Mapping[str, Any], path: tuple, node: str) -> dict[str, Any]:
    """Validate an op's arguments against its declared parameters."""
    names = [n for n in entry.params if n not in entry.refs]
    positional = [entry.positional] if entry.positional else []
    if raw is not None and not isinstance(raw, dict) and not positional:
        raise BuildError(f"`{entry.name}` takes no positional value; use a mapping", path=path, node=node,
                         hint=f"its arguments: {', '.join(names) or 'none'}")
    kwargs = substitute(_kwargs_from(raw, names, positional, entry.name, path), env, path)
    for key, value in kwargs.items():
        if key not in names:
            raise BuildError(f"`{entry.name}` has no argument `{key}`", path=path + (key,), node=node,
                             hint=did_you_mean(key, names) or f"its arguments: {', '.join(names) or 'none'}")
        kwargs[key] = _check_type(key, value, entry.params[key][0], entry.name, path + (key,))
    for key in names:
        if key not in kwargs and entry.params[key][1] is inspect.Parameter.empty:
            raise BuildError(f"`{entry.name}` needs `{key}`", path=path, node=node)
    return kwargs


# ---- running on meta ---------------------------------------------------------------------

def _meta_call(fn: Any, args: tuple, kwargs: dict, where: str, path: tuple, node: str,
               in_values: list[Any]) -> Any:
    try:
        with torch.no_grad():
            return fn(*args, **kwargs)
    except SpecError:
        raise
    except Exception as e:  # torch's own message, located at the node
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        ins = " and ".join(per_sample(v) for v in in_values)
        # torch shows full sizes; ours are per sample, and shapes are checked with a batch of 2
        hint = (f"torch's sizes include the batch of {META_BATCH} netspec checks shapes with"
                if f"[{META_BATCH}, " in msg or f"({META_BATCH}, " in msg else None)
        raise ShapeError(f"{where} cannot take input {ins}: {msg}", path=path, node=node, hint=hint) from None


def _construct_meta(cls: type[nn.Module], kwargs: dict[str, Any], where: str, path: tuple, node: str) -> nn.Module:
    try:
        with torch.device("meta"):
            module = cls(**kwargs)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BuildError(f"{where}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {msg}",
                         path=path, node=node) from None
    return module.eval()


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class _Inferer:
    """Walks a DAG computing meta values; one instance per spec."""

    def __init__(self, spec: Spec, params: dict[str, Any], options: Options):
        self.spec = spec
        self.params = params
        self.options = options
        self.blocks = set(spec.blocks)
        self.block_inputs = {k: b.inputs for k, b in spec.blocks.items()}
        self.total_params = 0
        self.total_nodes = 0
        self.active_blocks: list[str] = []  # blocks being instantiated, outermost first

    # graph level
    def infer(self, dag: Dag, inputs: dict[str, Any], env: dict[str, Any], name: str, output_type: str) -> TypedGraph:
        values: dict[str, Any] = dict(inputs)
        typed: list[TypedNode] = []
        for dnode in dag.nodes:
            local_env = {**env, **_env_shapes(values)}
            tnode = self.node(dnode, [values[r] for r in dnode.input_names], local_env)
            values[dnode.name] = tnode.value
            typed.append(tnode)
        return TypedGraph(name, inputs, typed, dag.outputs, output_type)

    def node(self, d: DagNode, in_values: list[Any], env: dict[str, Any]) -> TypedNode:
        self.total_nodes += 1
        if self.total_nodes > self.options.max_nodes:  # `repeat: 1000000000` must not run for hours
            raise ResourceError(f"the network expands to more than {self.options.max_nodes:,} nodes "
                                "(repeats and blocks counted as instantiated)", path=d.path, node=d.name,
                                hint="check `repeat` counts and nested blocks")
        repeat = d.spec.repeat
        if repeat is not None:
            return self.repeat(d, in_values, env, substitute(repeat, env, d.path + ("repeat",)))
        handler = {"layer": self.layer, "op": self.op, "block": self.block, "zoo": self.zoo}[d.kind]
        t = handler(d, in_values, env)
        t.freeze = d.spec.freeze
        return t

    def _arity(self, d: DagNode, n: int, lo: int, hi: int | None) -> None:
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            raise GraphError(f"`{d.op}` takes {want} input(s), got {n}", path=d.path + ("from",), node=d.name)

    def layer(self, d: DagNode, in_values: list[Any], env: dict[str, Any]) -> TypedNode:
        entry = layer_registry()[d.op]
        self._arity(d, len(in_values), entry.min_inputs, entry.max_inputs)
        kwargs, notes = bind_layer_args(entry, d.args, in_values, env, d.path + (d.op,), d.name)
        module = _construct_meta(entry.cls, kwargs, d.op, d.path + (d.op,), d.name)
        n = self._add_params(module, d)
        value = _meta_call(module, tuple(in_values), {}, d.op, d.path, d.name, in_values)
        return TypedNode(d.name, "layer", d.op, d.path, d.input_names, kwargs, value, notes,
                         layer_cls=entry.cls, params=n)

    def op(self, d: DagNode, in_values: list[Any], env: dict[str, Any]) -> TypedNode:
        entry = op_registry()[d.op]
        self._arity(d, len(in_values), entry.min_inputs, entry.max_inputs)
        kwargs = bind_op_args(entry, d.args, env, d.path + (d.op,), d.name)
        if entry.check is not None:
            shapes = [tuple(v.shape[1:]) for v in in_values]
            try:
                entry.check(shapes, **kwargs)
            except ShapeError as e:
                e.path, e.node = d.path, d.name
                e.message = f"{d.op}: {e.message}"
                raise
        fn, args, fkw = entry.emit(list(in_values), **kwargs)
        value = _meta_call(fn, args, fkw, d.op, d.path, d.name, in_values)
        return TypedNode(d.name, "op", d.op, d.path, d.input_names, kwargs, value, op_entry=entry)

    def block(self, d: DagNode, in_values: list[Any], env: dict[str, Any]) -> TypedNode:
        bspec = self.spec.blocks[d.op]
        bparams = self.block_params(bspec, d, env)
        ins = dict(zip(bspec.inputs, in_values))
        benv = {**self.params, **bparams, **_env_shapes(ins)}
        bpath = ("blocks", d.op)
        if d.op in self.active_blocks:
            chain = " -> ".join(self.active_blocks[self.active_blocks.index(d.op):] + [d.op])
            raise GraphError(f"block `{d.op}` uses itself ({chain}); blocks cannot be recursive",
                             path=d.path, node=d.name, hint="use `repeat` for a fixed number of copies")
        self.active_blocks.append(d.op)
        try:
            dag = resolve(bspec.nodes, bspec.inputs, bspec.outputs, benv, self.blocks, bpath, self.block_inputs)
            sub = self.infer(dag, ins, benv, d.op, "tuple")
        except SpecError as e:
            # Report where the block is used too: the error is in the block's definition.
            e.message += f" (in block `{d.op}` used at {format_path(d.path)} `{d.name}`)"
            raise
        finally:
            self.active_blocks.pop()
        value = _outputs_value(sub)
        n = sum(t.params for t in sub.nodes)
        notes = [f"{k}={v}" for k, v in bparams.items()]
        return TypedNode(d.name, "block", d.op, d.path, d.input_names, bparams, value, notes, sub=sub, params=n)

    def block_params(self, bspec: BlockSpec, d: DagNode, env: dict[str, Any]) -> dict[str, Any]:
        raw = d.args
        names = list(bspec.params)
        if raw is not None and not isinstance(raw, dict):
            if len(names) != 1:
                raise BuildError(f"block `{d.op}` takes parameters {', '.join(names) or 'none'}; use a mapping",
                                 path=d.path + (d.op,), node=d.name)
            raw = {names[0]: raw}
        given = substitute(raw or {}, env, d.path + (d.op,))
        for key in given:
            if key not in bspec.params:
                raise BuildError(f"block `{d.op}` has no parameter `{key}`", path=d.path + (d.op, key), node=d.name,
                                 hint=did_you_mean(key, names) or f"its parameters: {', '.join(names) or 'none'}")
        out: dict[str, Any] = {}
        for key, default in bspec.params.items():
            if key in given:
                out[key] = given[key]
            elif default == "required":
                raise BuildError(f"block `{d.op}` needs parameter `{key}`", path=d.path + (d.op,), node=d.name,
                                 hint=f"{d.op}: {{{key}: ...}}")
            else:
                try:
                    out[key] = substitute(default, {**self.params, **out})
                except SpecError as e:
                    e.path = ("blocks", d.op, "params", key)
                    raise
        return out

    def repeat(self, d: DagNode, in_values: list[Any], env: dict[str, Any], count: Any) -> TypedNode:
        if not isinstance(count, int) or count < 1:
            raise BuildError(f"`repeat` must be a positive integer, got {count!r}", path=d.path + ("repeat",), node=d.name)
        if count > self.options.max_nodes:
            raise ResourceError(f"`repeat: {count}` is over the limit of {self.options.max_nodes:,} nodes",
                                path=d.path + ("repeat",), node=d.name, hint="check the repeat count")
        if len(in_values) != 1:
            raise GraphError("a repeated node takes one input", path=d.path + ("from",), node=d.name)
        nodes: list[TypedNode] = []
        value = in_values[0]
        prev = "x"
        for i in range(count):
            single = NodeSpec(op=d.op, args=d.args)
            sub_d = DagNode(f"{d.name}_{i}", d.op, d.kind, d.args, [prev], d.path, single, d.ref_args)
            t = self.node(sub_d, [value], {**env, "i": i, **_env_shapes({"x": value})})
            t.name = f"{d.name}_{i}"
            nodes.append(t)
            value, prev = t.value, t.name
        sub = TypedGraph(f"{d.op}_repeat", {"x": in_values[0]}, nodes, [(prev, prev)], "tuple")
        nodes[0].inputs = ["x"]
        return TypedNode(d.name, "repeat", d.op, d.path, d.input_names, {"repeat": count}, value,
                         [f"x{count}"], freeze=d.spec.freeze, sub=sub, params=sum(t.params for t in nodes))

    def zoo(self, d: DagNode, in_values: list[Any], env: dict[str, Any]) -> TypedNode:
        path = d.path + (d.op,)
        raw = substitute(d.args or {}, env, path)
        if not isinstance(raw, dict):
            raise BuildError(f"`{d.op}` takes a mapping of arguments", path=path, node=d.name)
        allowed = zoo_params(d.op)
        kwargs = {k: v for k, v in raw.items() if k not in ZOO_EXTRA_ARGS}
        for key in kwargs:
            if key not in allowed:
                raise BuildError(f"torchvision `{d.op}` has no argument `{key}`", path=path + (key,), node=d.name,
                                 hint=did_you_mean(key, [*allowed, *ZOO_EXTRA_ARGS]) or
                                 f"its arguments: {', '.join([*allowed, *sorted(ZOO_EXTRA_ARGS)])}")
        weights = raw.get("weights")
        if weights is not None and not (isinstance(weights, str) and (self.options.base_dir / weights).suffix in
                                        (".pt", ".pth", ".bin", ".ckpt")):
            raise BuildError(f"`weights` must be a local .pt/.pth file, got {weights!r}", path=path + ("weights",),
                             node=d.name, hint="weights are never downloaded; save a state_dict and name the file")
        weights_file = None if weights is None else local_weights_file(
            weights, self.options.base_dir, self.options.roots, path + ("weights",), d.name)
        try:
            with torch.device("meta"):
                model = zoo_builder(d.op)(**kwargs)
        except Exception as e:
            raise BuildError(f"torchvision {d.op}({kwargs}) failed: {str(e).splitlines()[0]}", path=path, node=d.name) from None
        truncate = raw.get("truncate")
        if truncate is not None:
            model = _truncate(model, str(truncate), path + ("truncate",), d.name)
        replace: list[tuple[str, TypedNode]] = []
        if not isinstance(raw.get("replace") or {}, dict):
            raise BuildError("`replace` maps submodule names to layers, e.g. {fc: {Linear: {out_features: 10}}}",
                             path=path + ("replace",), node=d.name)
        for target, rspec in (raw.get("replace") or {}).items():
            rnode = self._replacement(model, str(target), rspec, env, path + ("replace", target), d.name)
            with torch.device("meta"):
                set_submodule(model, str(target), rnode.layer_cls(**rnode.args))
            replace.append((str(target), rnode))
        self.total_params += _count(model)
        self._check_budget(d)
        value = _meta_call(model.eval(), tuple(in_values), {}, d.op, d.path, d.name, in_values)
        plan = ZooPlan(d.op, kwargs, weights_file,
                       bool(raw.get("strict", True)), truncate, replace)
        notes = [f"weights: {weights}" if weights else "random init (no weights file)"]
        notes += [f"replaced {t} with {r.op}" for t, r in replace]
        return TypedNode(d.name, "zoo", d.op, d.path, d.input_names, kwargs, value, notes, zoo=plan, params=_count(model))

    def _replacement(self, model: nn.Module, target: str, rspec: Any, env: dict[str, Any],
                     path: tuple, node: str) -> TypedNode:
        try:
            old = get_submodule(model, target)
        except BuildError as e:
            e.path, e.node = path, node
            raise
        if isinstance(rspec, str):
            rspec = {rspec: {}}
        if not isinstance(rspec, dict) or len(rspec) != 1:
            raise BuildError("a replacement is one layer, e.g. {Linear: {out_features: 10}}", path=path, node=node)
        (op, args), = rspec.items()
        entry = layer_registry().get(op)
        if entry is None:
            raise BuildError(f"unknown layer `{op}`", path=path, node=node,
                             hint=did_you_mean(op, layer_registry()))
        known = incoming_shape_of(old)
        kwargs, _ = bind_layer_args(entry, args, [], env, path + (op,), node)
        for key, value in known.items():
            if key in entry.params and key not in kwargs:
                kwargs[key] = value
        missing = [p for p in entry.params if p in INFERRED and p not in kwargs
                   and entry.params[p].default is inspect.Parameter.empty]
        if missing:
            raise BuildError(f"cannot infer `{missing[0]}` for the replacement of `{target}`", path=path, node=node,
                             hint=f"give it: {op}: {{{missing[0]}: ...}}")
        _construct_meta(entry.cls, kwargs, op, path, node)
        return TypedNode(target, "layer", op, path, [], kwargs, None, layer_cls=entry.cls)

    def _add_params(self, module: nn.Module, d: DagNode) -> int:
        n = _count(module)
        self.total_params += n
        self._check_budget(d)
        return n

    def _check_budget(self, d: DagNode) -> None:
        if self.total_params > self.options.max_params:
            gib = self.total_params * 4 / 2 ** 30
            raise ResourceError(f"the model reaches {self.total_params:,} parameters ({gib:,.1f} GiB in fp32) "
                                f"at this node, over the limit of {self.options.max_params:,}",
                                path=d.path, node=d.name,
                                hint="check the sizes; raise the limit with --max-params if this is intended")


def _truncate(model: nn.Module, until: str, path: tuple, node: str) -> nn.Module:
    children = dict(model.named_children())
    if until not in children:
        raise BuildError(f"cannot truncate at `{until}`: no such top-level child", path=path, node=node,
                         hint=did_you_mean(until, children) or f"children: {', '.join(children)}")
    kept: dict[str, nn.Module] = {}
    for name, child in children.items():
        kept[name] = child
        if name == until:
            break
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(kept))


def _outputs_value(graph: TypedGraph) -> Any:
    by_name = {**graph.inputs, **{n.name: n.value for n in graph.nodes}}
    values = [by_name[ref] for _, ref in graph.outputs]
    return values[0] if len(values) == 1 else tuple(values)


def _input_values(spec: Spec, params: dict[str, Any], max_bytes: int = Options.max_activation_bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ispec in spec.inputs.items():
        shape = substitute(list(ispec.shape), params, ("inputs", name, "shape"))
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            named = [s for s in shape if isinstance(s, str) and s in params]
            raise ShapeError(f"input `{name}` has shape {shape}; sizes must be positive integers",
                             path=("inputs", name),
                             hint=f"write `${named[0]}` to use the parameter `{named[0]}`" if named else None)
        nbytes = math.prod(shape) * _DTYPES[ispec.dtype].itemsize
        if nbytes > max_bytes:  # also keeps torch's storage-size arithmetic from overflowing
            raise ResourceError(f"input `{name}` has shape {shape}: {nbytes / 2 ** 30:,.1f} GiB per sample, over "
                                f"the limit of {max_bytes / 2 ** 30:,.1f} GiB", path=("inputs", name),
                                hint="check the input shape")
        out[name] = torch.empty((META_BATCH, *shape), dtype=_DTYPES[ispec.dtype], device="meta")
    return out


def resolve_params(spec: Spec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Spec parameters with overrides applied; unknown override names are errors."""
    params = dict(spec.params)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise SpecError(f"no spec parameter `{key}`", path=("params",),
                            hint=did_you_mean(key, params) or f"parameters: {', '.join(params) or 'none'}")
        params[key] = value
    return params


def infer_shapes(spec: Spec, params: Mapping[str, Any] | None = None, options: Options | None = None) -> TypedGraph:
    """Resolve the spec's graph and infer every shape, before any real module is built.

    >>> from netspec.spec import load_spec
    >>> spec = load_spec("t.yaml", text="name: t\\ninputs: {x: [1, 28, 28]}\\nnodes:\\n  - Conv2d: {out_channels: 4, kernel_size: 3}\\n  - Flatten: {}\\n  - Linear: {out_features: 10}\\n")
    >>> tg = infer_shapes(spec)
    >>> [(n.name, shape_str(n.value)) for n in tg.nodes]
    [('conv2d', '(B, 4, 26, 26)'), ('flatten', '(B, 2704)'), ('linear', '(B, 10)')]
    """
    options = options or Options()
    params = dict(params) if params is not None else dict(spec.params)
    inputs = _input_values(spec, params, options.max_activation_bytes)
    env = {**params, **_env_shapes(inputs)}
    inferer = _Inferer(spec, params, options)
    dag = resolve(spec.nodes, list(spec.inputs), spec.outputs, env, set(spec.blocks), (),
                  {k: b.inputs for k, b in spec.blocks.items()})
    graph = inferer.infer(dag, inputs, env, spec.name, spec.output_type)
    _check_activations(graph, options)
    return graph


def _check_activations(graph: TypedGraph, options: Options) -> None:
    total = 0
    largest: tuple[int, TypedNode | None] = (0, None)
    for node in graph.nodes:
        size = 0
        for v in (node.value if isinstance(node.value, tuple) else (node.value,)):
            if isinstance(v, torch.Tensor):
                size += math.prod(v.shape[1:]) * v.element_size()
        total += size
        if size > largest[0]:
            largest = (size, node)
    if total > options.max_activation_bytes:
        big = largest[1]
        assert big is not None
        raise ResourceError(f"forward activations need about {total / 2 ** 30:,.1f} GiB per sample, over the "
                            f"limit of {options.max_activation_bytes / 2 ** 30:,.1f} GiB; the largest is "
                            f"`{big.name}` ({per_sample(big.value)}, {largest[0] / 2 ** 30:,.1f} GiB)",
                            path=big.path, node=big.name, hint="check the input shape and layer sizes")
