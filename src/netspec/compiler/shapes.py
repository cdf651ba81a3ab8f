"""Stage 4: a DAG -> a typed graph: concrete arguments, inferred sizes, every output shape.

Shapes are found by running each layer on *meta* tensors (no memory, no compute), so every
torch.nn layer is covered without a hand-written shape rule (the common ones have one anyway,
for speed: ``shape_rules.py``, checked against the meta run); merges get explicit checks first,
so a mismatch is reported at the node with both shapes. Every node runs at two batch sizes
(``dims.py``), so the batch dim is known wherever a layer puts it. Blocks, groups and repeats
are instantiated here, recursively, because their ``when`` choices and arithmetic depend on
parameters and input shapes.
"""

from __future__ import annotations

import dataclasses
import math
from collections import ChainMap
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import BuildError, GraphError, ResourceError, ShapeError, SpecError, did_you_mean, format_path
from ..nodes.buffers import bind_buffer_args, buffer_probe
from ..nodes.functional import _DTYPES  # the one table of dtype names (generated code casts with it)
from ..nodes.layers import LAYERS
from ..nodes.model_nodes import infer_zoo
from ..nodes.op_registry import INPUT_NAMES
from ..nodes.ops import OPS, OpType
from ..nodes.parameters import bind_parameter_args, parameter_probe
from .binding import bind_layer_args, bind_op_args
from .dims import (  # noqa: F401
    META_BATCH,
    Probe,
    args_key,
    check_batch_kept,
    construct_meta,
    fresh,
    input_probe,
    per_sample,
    probe_key,
    run_probe,
    sample_shape,
    symbolic,
)
from .expr import ShapeInfo, substitute
from .graph import Dag, DagNode, resolve
from .keys import inner_name
from .shape_rules import argument_refusal, op_probe_by_rule, probe_by_rule
from .sharing import first_difference, param_count, shapes_of
from .spec import BlockSpec, Spec
from .typed import Options, TypedGraph, TypedNode, ZooPlan  # noqa: F401  (re-exported)


def _shape_info(p: Probe) -> ShapeInfo | None:
    """What `$name.shape` sees of a value: its dims that do not depend on the batch."""
    return ShapeInfo(sample_shape(p.value, p.twin)) if isinstance(p.value, torch.Tensor) else None


def _env_shapes(values: Mapping[str, Probe]) -> dict[str, Any]:
    return {k: info for k, p in values.items() if (info := _shape_info(p)) is not None}


def _check_arguments(module: nn.Module, d: DagNode) -> None:
    """A BuildError at the argument (where the spec writes it) that torch refuses for any input."""
    refusal = argument_refusal(module)
    if refusal is not None:
        written = isinstance(d.args, dict) and refusal.arg in d.args
        raise BuildError(refusal.message, path=d.path + (d.op,) + ((refusal.arg,) if written else ()), node=d.name)


def _rule_probe(module: nn.Module, ins: list[Probe], kw: dict[str, Probe], d: DagNode) -> Probe | None:
    """The output by the layer's shape rule (None: run it on meta); its refusal located at the node."""
    try:
        return probe_by_rule(module, ins, kw)
    except ShapeError as e:
        e.message, e.path, e.node = f"{d.op} {e.message}", d.path, d.name
        raise


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
        # (layer class or op, arguments, input shapes) -> (parameters, output): see dims.py
        self.reused: dict[Hashable, tuple[int, Probe]] = {}
        self.scopes: list[dict[str, TypedNode]] = []  # the typed nodes of each graph being inferred

    # graph level
    def infer(self, dag: Dag, inputs: dict[str, Probe], env: dict[str, Any], name: str, output_type: str) -> TypedGraph:
        values: dict[str, Probe] = dict(inputs)
        local_env = {**env, **_env_shapes(inputs)}
        typed: list[TypedNode] = []
        self.scopes.append({})  # this graph's nodes by name, for `same_as`
        for dnode in dag.nodes:
            ins = [values[r] for r in _positional(dnode)]
            kw = {
                k: values[v] if isinstance(v, str) else Probe.of_tuple([values[x] for x in v])
                for k, v in dnode.kw_inputs.items()
            }
            tnode = self.node(dnode, ins, kw, local_env)
            values[dnode.name] = tnode.probe
            if (info := _shape_info(tnode.probe)) is not None:
                local_env[dnode.name] = info  # in place: a copy per node would make compiling quadratic
            typed.append(tnode)
            self.scopes[-1][tnode.name] = tnode
        self.scopes.pop()
        return TypedGraph.of(name, inputs, typed, dag.outputs, output_type)

    def node(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        self.total_nodes += 1
        if self.total_nodes > self.options.max_nodes:  # `repeat: 1000000000` must not run for hours
            raise ResourceError(
                f"the network expands to more than {self.options.max_nodes:,} nodes "
                "(repeats and blocks counted as instantiated)",
                path=d.path,
                node=d.name,
                hint="check `repeat` counts and nested blocks",
            )
        if d.shares is not None:
            return self.shared(d, ins, kw, env)
        repeat = d.spec.repeat
        if repeat is not None:
            t = self.repeat(d, ins, kw, env, substitute(repeat, env, d.path + ("repeat",)))
        else:
            t = self._one(d, ins, kw, env)
        if d.spec.tie and d.kind in ("op", "param", "buffer"):
            raise GraphError(f"a {d.op} node has no parameters to tie", path=d.path + ("tie",), node=d.name)
        t.tie, t.training_only = d.spec.tie, bool(d.spec.training_only)
        for own in t.tie or {}:  # a tied parameter is the other's: counted once, as torch counts it
            tied = param_count(t, own)
            t.params -= tied
            self.total_params -= tied
        return t

    def _one(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        """One node (not a repeat, not a `same_as`), by its kind."""
        if d.spec.freeze and d.kind == "buffer":  # never silently ignored
            raise GraphError(
                "a Buffer is not learnt: `freeze` has nothing to stop", path=d.path + ("freeze",), node=d.name
            )
        handler = {
            "layer": self.layer,
            "op": self.op,
            "param": self.param,
            "buffer": self.buffer,
            "block": self.block,
            "group": self.group,
            "zoo": self.zoo,
            "timm": self.zoo,
        }[d.kind]
        t = handler(d, ins, kw, env)
        if d.kind in ("layer", "op", "zoo", "timm"):
            keep = OPS[d.op].batch_inputs if d.kind == "op" else None  # the rest give sizes or indices
            try:
                check_batch_kept([*ins, *kw.values()][:keep], t.probe, d.op, d.kind == "op" and OPS[d.op].folds)
            except ShapeError as e:
                e.path, e.node = d.path, d.name
                raise
        t.freeze = d.spec.freeze
        return t

    def shared(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        """A node calling another's module again: inferred as a copy of it on its own inputs,
        which must build the same module (a Linear's inferred in_features must not change)."""
        assert d.shares is not None
        target = self.scopes[-1][d.shares]
        params = self.total_params
        copy = self.node(dataclasses.replace(d, shares=None), ins, kw, env)
        self.total_params = params  # the weights are the target's, counted once
        differs = first_difference(copy, target)
        if differs is not None:
            raise ShapeError(
                f"`same_as: {d.shares}` reads {shapes_of(ins)}, which would build another module than "
                f"`{d.shares}`'s ({differs})",
                path=d.path + ("from",) if d.spec.from_ is not None else d.path,
                node=d.name,
                hint=f"give it inputs of the shapes `{d.shares}` reads",
            )
        return TypedNode(
            d.name,
            "shared",
            copy.op,
            d.path,
            copy.inputs,
            {"same_as": d.shares},
            copy.value,
            copy.twin,
            [f"same module as {d.shares}"],
            kw_inputs=copy.kw_inputs,
        )

    def _arity(self, d: DagNode, n: int, lo: int, hi: int | None) -> None:
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            raise GraphError(f"`{d.op}` takes {want} input(s), got {n}", path=d.path + ("from",), node=d.name)

    def layer(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        entry = LAYERS[d.op]
        self._arity(d, len(ins), entry.min_inputs, entry.max_inputs)
        kwargs, notes = bind_layer_args(entry, d.args, ins, env, d.path + (d.op,), d.name)
        # a custom module is user code: nothing says its output depends only on the keyed facts
        key = None if entry.custom else _call_key(entry.cls, kwargs, ins, kw)
        if key in self.reused:
            n, out = self.reused[key]
            self._add_params(n, d)
            out = Probe(fresh(out.value), fresh(out.twin))
        else:
            module = construct_meta(entry.cls, kwargs, d.op, d.path + (d.op,), d.name)
            _check_arguments(module, d)
            n = self._add_params(_count(module), d)
            out = _rule_probe(module, ins, kw, d) or run_probe(module, ins, kw, d.op, d.path, d.name)
            self._remember(key, n, out)
        return TypedNode(
            d.name,
            "layer",
            d.op,
            d.path,
            _positional(d),
            kwargs,
            out.value,
            out.twin,
            notes,
            kw_inputs=dict(d.kw_inputs),
            layer_cls=entry.cls,
            params=n,
        )

    def op(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        entry = OPS[d.op]
        self._arity(d, len(ins), entry.min_inputs, entry.max_inputs)
        kwargs = bind_op_args(entry, d.args, env, d.path + (d.op,), d.name)
        if entry.refs_from is not None:  # the emit reads its inputs by name (an `index` subscript)
            kwargs[INPUT_NAMES] = _positional(d)
        key = _call_key(d.op, kwargs, ins, {})
        if key in self.reused:
            out = self.reused[key][1]
            return TypedNode(
                d.name, "op", d.op, d.path, _positional(d), kwargs, fresh(out.value), fresh(out.twin), op_entry=entry
            )
        out = self._run_op(entry, d, ins, kwargs)
        self._remember(key, 0, out)
        return TypedNode(d.name, "op", d.op, d.path, _positional(d), kwargs, out.value, out.twin, op_entry=entry)

    def _run_op(self, entry: OpType, d: DagNode, ins: list[Probe], kwargs: dict[str, Any]) -> Probe:
        if entry.check is not None and all(isinstance(p.value, torch.Tensor) for p in ins):
            try:
                entry.check([symbolic(p.value, p.twin) for p in ins], **kwargs)
            except ShapeError as e:
                e.path, e.node = d.path, d.name
                e.message = f"{d.op}: {e.message}"
                raise

        if (out := op_probe_by_rule(entry, ins, kwargs)) is not None:
            return out

        def call(*xs: Any) -> Any:
            fn, args, fkw = entry.emit(list(xs), **kwargs)
            return fn(*args, **fkw)

        try:
            out = run_probe(call, ins, {}, d.op, d.path, d.name)
        except SpecError as e:  # the op's own check of its inputs and arguments (`add` of 2 and a number)
            e.path, e.node = e.path or d.path, e.node or d.name
            raise
        return out

    def param(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        args = bind_parameter_args(d.args, env, d.path + (d.op,), d.name)
        out = parameter_probe(args)
        n = math.prod(args["shape"])
        self.total_params += n
        self._check_budget(d)
        notes = [f"init {args['init']}" + (f" {args['init_args']}" if args["init_args"] else "")]
        return TypedNode(d.name, "param", d.op, d.path, [], args, out.value, out.twin, notes, params=n)

    def buffer(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        opts = self.options
        args = bind_buffer_args(d.args, env, d.path + (d.op,), d.name, opts.base_dir, opts.roots)
        out = buffer_probe(args)
        source = "value" if args["value"] is not None else f"init {args['init']}"
        notes = [source + ("" if args["persistent"] else ", not persistent")]
        return TypedNode(d.name, "buffer", d.op, d.path, [], args, out.value, out.twin, notes)

    def block(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        bspec = self.spec.blocks[d.op]
        bparams = self.block_params(bspec, d, env)
        probes = dict(zip(bspec.inputs, ins))
        benv = {**self.params, **bparams, **_env_shapes(probes)}
        if d.op in self.active_blocks:
            chain = " -> ".join(self.active_blocks[self.active_blocks.index(d.op) :] + [d.op])
            raise GraphError(
                f"block `{d.op}` uses itself ({chain}); blocks cannot be recursive",
                path=d.path,
                node=d.name,
                hint="use `repeat` for a fixed number of copies",
            )
        self.active_blocks.append(d.op)
        try:
            dag = resolve(
                bspec.nodes, bspec.inputs, bspec.outputs, benv, self.blocks, ("blocks", d.op), self.block_inputs
            )
            sub = self.infer(dag, probes, benv, d.op, "tuple")
        except SpecError as e:
            # Report where the block is used too: the error is in the block's definition.
            e.message += f" (in block `{d.op}` used at {format_path(d.path)} `{d.name}`)"
            raise
        finally:
            self.active_blocks.pop()
        out = sub.output_probe()
        notes = [f"{k}={v}" for k, v in bparams.items()]
        return TypedNode(
            d.name,
            "block",
            d.op,
            d.path,
            _positional(d),
            bparams,
            out.value,
            out.twin,
            notes,
            sub=sub,
            params=sub.total_params(),
        )

    def block_params(self, bspec: BlockSpec, d: DagNode, env: dict[str, Any]) -> dict[str, Any]:
        raw = d.args
        names = list(bspec.params)
        if raw is not None and not isinstance(raw, dict):
            if len(names) != 1:
                raise BuildError(
                    f"block `{d.op}` takes parameters {', '.join(names) or 'none'}; use a mapping",
                    path=d.path + (d.op,),
                    node=d.name,
                )
            raw = {names[0]: raw}
        given = substitute(raw or {}, env, d.path + (d.op,))
        for key in given:
            if key not in bspec.params:
                raise BuildError(
                    f"block `{d.op}` has no parameter `{key}`",
                    path=d.path + (d.op, key),
                    node=d.name,
                    hint=did_you_mean(key, names) or f"its parameters: {', '.join(names) or 'none'}",
                )
        out: dict[str, Any] = {}
        for key, default in bspec.params.items():
            if key in given:
                out[key] = given[key]
            elif default == "required":
                raise BuildError(
                    f"block `{d.op}` needs parameter `{key}`",
                    path=d.path + (d.op,),
                    node=d.name,
                    hint=f"{d.op}: {{{key}: ...}}",
                )
            else:
                try:
                    out[key] = substitute(default, {**self.params, **out})
                except SpecError as e:
                    e.path = ("blocks", d.op, "params", key)
                    raise
        return out

    def group(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        """A chain of nodes as one sub-module; its inputs (`from: [x, pos]`) keep their names inside."""
        self._arity(d, len(ins), 1, None)
        sources = _positional(d)
        assert d.spec.nodes is not None
        inner = [inner_name(s) for s in sources]  # a Python name; `0` (a numbered node's) would clash
        dag = resolve(d.spec.nodes, inner, d.spec.outputs, env, self.blocks, d.path, self.block_inputs, numbered=True)
        sub = self.infer(dag, dict(zip(inner, ins)), env, d.name, "tuple")
        out = sub.output_probe()
        return TypedNode(
            d.name, "group", d.op, d.path, sources, {}, out.value, out.twin, sub=sub, params=sub.total_params()
        )

    def repeat(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any], count: Any) -> TypedNode:
        """N copies in a chain, named 0..N-1 as in nn.Sequential (torchvision's `layer1.0.conv1`).

        Keyword inputs (a padding mask) go to every copy: they become inputs of the repeat."""
        if not isinstance(count, int) or count < 1:
            raise BuildError(
                f"`repeat` must be a positive integer, got {count!r}", path=d.path + ("repeat",), node=d.name
            )
        if count > self.options.max_nodes:
            raise ResourceError(
                f"`repeat: {count}` is over the limit of {self.options.max_nodes:,} nodes",
                path=d.path + ("repeat",),
                node=d.name,
                hint="check the repeat count",
            )
        if len(ins) != 1:
            raise GraphError("a repeated node takes one input", path=d.path + ("from",), node=d.name)
        keywords = (n for v in d.kw_inputs.values() for n in ([v] if isinstance(v, str) else v))
        extra = list(dict.fromkeys(keywords))  # keyword inputs' sources
        chain = "x" if "x" not in extra else "x_in"
        single = d.spec.model_copy(update={"repeat": None, "freeze": None, "tie": None})
        outer = dict(zip(extra, (self._kw_source(d, n, kw) for n in extra)))
        nodes: list[TypedNode] = []
        value, prev = ins[0], chain
        for i in range(count):
            sub_d = DagNode(str(i), d.op, d.kind, d.args, [prev], d.path, single, d.ref_args, dict(d.kw_inputs))
            env_i = ChainMap({"i": i, **_env_shapes({"x": value})}, env)  # read only, as a dict is
            t = self.node(sub_d, [value], kw, env_i)  # type: ignore[arg-type]
            nodes.append(t)
            value, prev = t.probe, t.name
        sub = TypedGraph.of(f"{d.op}_repeat", {chain: ins[0], **outer}, nodes, [(prev, prev)], "tuple")
        return TypedNode(
            d.name,
            "repeat",
            d.op,
            d.path,
            [_positional(d)[0], *extra],
            {"repeat": count},
            value.value,
            value.twin,
            [f"x{count}"],
            freeze=d.spec.freeze,
            sub=sub,
            params=sub.total_params(),
        )

    def _kw_source(self, d: DagNode, name: str, kw: dict[str, Probe]) -> Probe:
        """The value of node `name`, one of the keyword inputs of `d`."""
        for key, ref in d.kw_inputs.items():
            if ref == name:
                return kw[key]
            if isinstance(ref, list) and name in ref:
                return Probe(kw[key].value[ref.index(name)], kw[key].twin[ref.index(name)])
        raise AssertionError(name)

    def zoo(self, d: DagNode, ins: list[Probe], kw: dict[str, Probe], env: dict[str, Any]) -> TypedNode:
        t = infer_zoo(d.op, d.args, ins, env, self.options, d.path, d.name)
        t.inputs = _positional(d)
        self.total_params += t.params
        self._check_budget(d)
        return t

    def _add_params(self, n: int, d: DagNode) -> int:
        self.total_params += n
        self._check_budget(d)
        return n

    def _remember(self, key: Hashable | None, params: int, out: Probe) -> None:
        """Keep a meta run's result for the next identical call, if it can be copied."""
        if key is None:
            return
        try:  # a copy: the node's own tensors go on to the next nodes, which must not reach the kept ones
            self.reused[key] = (params, Probe(fresh(out.value), fresh(out.twin)))
        except TypeError:
            return

    def _check_budget(self, d: DagNode) -> None:
        if self.total_params > self.options.max_params:
            gib = self.total_params * 4 / 2**30
            raise ResourceError(
                f"the model reaches {self.total_params:,} parameters ({gib:,.1f} GiB in fp32) "
                f"at this node, over the limit of {self.options.max_params:,}",
                path=d.path,
                node=d.name,
                hint="check the sizes; raise the limit with --max-params if this is intended",
            )


def _call_key(target: Any, kwargs: dict[str, Any], ins: list[Probe], kw: dict[str, Probe]) -> Hashable | None:
    """What a layer's or op's output depends on, or None when some argument is not plain data."""
    try:
        return target, args_key(kwargs), tuple(map(probe_key, ins)), tuple((k, probe_key(p)) for k, p in kw.items())
    except TypeError:
        return None


def _positional(d: DagNode) -> list[str]:
    return list(d.inputs.values()) if isinstance(d.inputs, dict) else list(d.inputs)


def _input_values(
    spec: Spec, params: dict[str, Any], max_bytes: int = Options.max_activation_bytes
) -> dict[str, Probe]:
    out: dict[str, Probe] = {}
    for name, ispec in spec.inputs.items():
        shape = substitute(list(ispec.shape), params, ("inputs", name, "shape"))
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            named = [s for s in shape if isinstance(s, str) and s in params]
            raise ShapeError(
                f"input `{name}` has shape {shape}; sizes must be positive integers",
                path=("inputs", name),
                hint=f"write `${named[0]}` to use the parameter `{named[0]}`" if named else None,
            )
        nbytes = math.prod(shape) * _DTYPES[ispec.dtype].itemsize
        if nbytes > max_bytes:  # also keeps torch's storage-size arithmetic from overflowing
            raise ResourceError(
                f"input `{name}` has shape {shape}: {nbytes / 2**30:,.1f} GiB per sample, over "
                f"the limit of {max_bytes / 2**30:,.1f} GiB",
                path=("inputs", name),
                hint="check the input shape",
            )
        out[name] = input_probe(tuple(shape), _DTYPES[ispec.dtype])
    return out


def resolve_params(spec: Spec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Spec parameters with overrides applied; unknown override names are errors."""
    params = dict(spec.params)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise SpecError(
                f"no spec parameter `{key}`",
                path=("params",),
                hint=did_you_mean(key, params) or f"parameters: {', '.join(params) or 'none'}",
            )
        params[key] = value
    return params


def infer_shapes(spec: Spec, params: Mapping[str, Any] | None = None, options: Options | None = None) -> TypedGraph:
    """Resolve the spec's graph and infer every shape, before any real module is built.

    >>> from netspec.compiler.spec import load_spec
    >>> spec = load_spec("t.yaml", text="name: t\\ninputs: {x: [1, 28, 28]}\\nnodes:\\n  - Conv2d: {out_channels: 4, kernel_size: 3}\\n  - Flatten: {}\\n  - Linear: {out_features: 10}\\n")
    >>> tg = infer_shapes(spec)
    >>> [(n.name, n.shape) for n in tg.nodes]
    [('conv2d', '(B, 4, 26, 26)'), ('flatten', '(B, 2704)'), ('linear', '(B, 10)')]
    """
    options = options or Options()
    params = dict(params) if params is not None else dict(spec.params)
    inputs = _input_values(spec, params, options.max_activation_bytes)
    env = {**params, **_env_shapes(inputs)}
    inferer = _Inferer(spec, params, options)
    # the model nodes a loss graph reads (`loss: {terms: ...}`) are used, though no output reads them
    kept = spec.loss.model_reads() if spec.loss is not None else []
    dag = resolve(
        spec.nodes,
        list(spec.inputs),
        spec.outputs,
        env,
        set(spec.blocks),
        (),
        {k: b.inputs for k, b in spec.blocks.items()},
        kept=kept,
    )
    graph = inferer.infer(dag, inputs, env, spec.name, spec.output_type)
    refs = graph.unfolded_outputs()  # a folded batch (64B) never leaves the model
    graph.extras = [n.name for n in dag.nodes if n.name in kept and n.name not in refs]
    _check_activations(graph, options)
    return graph


def infer_graph(
    spec: Spec, dag: Dag, inputs: dict[str, Probe], name: str, params: Mapping[str, Any] | None = None
) -> TypedGraph:
    """Infer the shapes of another graph over a spec's values (a loss graph over the model's
    outputs), with the spec's parameters and blocks; it returns a dict of its outputs.

    >>> from netspec.compiler.spec import load_spec, NodeSpec
    >>> spec = load_spec("t.yaml", text="name: t\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n")
    >>> dag = resolve([NodeSpec(op="exp", name="e")], ["y"], ["e"], {}, set(), ("loss",))
    >>> infer_graph(spec, dag, {"y": input_probe((3,), torch.float32)}, "loss").node("e").shape
    '(B, 3)'
    """
    params = dict(params) if params is not None else dict(spec.params)
    env = {**params, **_env_shapes(inputs)}
    return _Inferer(spec, params, Options()).infer(dag, inputs, env, name, "dict")


def _check_activations(graph: TypedGraph, options: Options) -> None:
    total = 0
    largest: tuple[int, TypedNode | None] = (0, None)
    for node in graph.nodes:
        size = 0
        for v in node.value if isinstance(node.value, tuple) else (node.value,):
            if isinstance(v, torch.Tensor):
                size += math.prod(v.shape[1:]) * v.element_size()
        total += size
        if size > largest[0]:
            largest = (size, node)
    if total > options.max_activation_bytes:
        big = largest[1]
        assert big is not None
        raise ResourceError(
            f"forward activations need about {total / 2**30:,.1f} GiB per sample, over the "
            f"limit of {options.max_activation_bytes / 2**30:,.1f} GiB; the largest is "
            f"`{big.name}` ({per_sample(big.value, big.twin)}, {largest[0] / 2**30:,.1f} GiB)",
            path=big.path,
            node=big.name,
            hint="check the input shape and layer sizes",
        )
