"""A traced module -> a :class:`Body` of spec nodes, one fx node at a time.

- a call of a torch.nn layer is a layer node named after the attribute (its state_dict keys);
- a call of an ``nn.Sequential`` is a group (its children named 0, 1, ... by position);
- a call of another module is a node whose ``use`` holds that module's own body (a block,
  once ``blocks.py`` has seen every instance of its class);
- a parameter read in forward is a ``Parameter`` node; a torch function or tensor method is an
  op (``functions.py``); numbers the forward computes from sizes are folded to constants.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Set
from typing import Any

import torch
from torch import fx

from ..compiler.node_forms import NODE_NAME
from ..nodes.kinds import GROUP_OP
from ..nodes.layers import LAYERS
from . import assign, attention, groups, layer_calls, passing, tensor_ops, weight_calls  # noqa: F401  (register: layers, attention, ops)
from .again import fixed_args, same_as_node
from .block_use import block_use, calls_numbered, drop_unread
from .buffers import buffer_node, holder_node, init_of, read_tensor
from .call import Call, Result
from .concrete import put
from .errors import ImportFailed
from .functions import call_name, convert_call
from .groups import group_node, inner_name, numbered_child, numbered_group
from .ir import BatchSize, Body, Namer, Pieces, Ref, SNode, has_state
from .kinds import same_padded
from .layer_args import node_args
from .loops import Loop, Refused, check_keys_called, find_loops, inside_loop, keyed_heads, loop_refused, refs_in
from .norm_act import norm_act_nodes, norm_base
from .passing import batch_source, batch_value, constant, has_tensor, size_source, tuple_items, with_sizes
from .pieces import hoist_lists
from .same_pad import same_conv_nodes
from .trace import META, TRAINING_ONLY, TensorMeta, Traced

# Flags a layer's forward takes that change nothing the spec keeps (MultiheadAttention's
# need_weights=False only skips returning the weights, which nothing then reads).
IGNORED_FLAGS = {"need_weights"}


def _plain(value: Any) -> Any:
    """fx's immutable lists and dicts as plain ones (what YAML writes)."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _named_inputs(node: SNode, head: str, where: str) -> list[str] | dict[str, str]:
    """An item's inputs, as the group (later the repeat) of a ModuleList takes them: the chained
    input alone, or a mapping by name when a layer's keyword inputs (a padding mask) go to each."""
    inputs = node.inputs or []
    if isinstance(inputs, list) and len(inputs) > 1:
        raise ImportFailed(
            f"forward gives the items of nn.ModuleList `{head}` more than the previous item's output "
            f"({', '.join(inputs[1:])}): a repeat passes more on only as a torch.nn layer's keyword "
            "inputs (a padding mask)",
            where=where,
        )
    return inputs if isinstance(inputs, dict) else list(inputs)


def _side_inputs(inputs: list[str] | dict[str, str] | None) -> Any:
    """What an item is given besides the chained input (the first)."""
    return list(inputs.items())[1:] if isinstance(inputs, dict) else list(inputs or [])[1:]


def _callee(n: fx.Node) -> str:
    """What an fx node calls, as the forward wrote it: `self.drop`, `torch.tanh`, `Tensor.view`, `output`."""
    if n.op == "call_module":
        return f"self.{n.target}"
    return call_name(n.op, n.target) if n.op.startswith("call_") else n.op


def _first(loop: Loop | Refused) -> fx.Node:
    """Where the converter meets a loop: its first node, or the first item of a refused one."""
    return loop.nodes[0] if isinstance(loop, Loop) else loop.at


class Converter:
    """Converts one traced custom (or Sequential) module call; see the module docstring."""

    def __init__(
        self, traced: Traced, hoisted: Set[str] = frozenset(), input_name: str | list[str] | None = None
    ) -> None:
        assert traced.graph is not None
        self.graph: fx.Graph = traced.graph
        self.t, self.hoisted = traced, set(hoisted)
        self.module = traced.module
        self.where = traced.path  # "" at the top: the error's location names the model
        self.env: dict[fx.Node, Any] = {}
        self.nodes: list[SNode] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.output_keys: list[str] | None = None  # the model returns a dict with these keys
        self.notes: list[tuple[str, str]] = []
        self.calls: dict[str, int] = {}
        self.first: dict[str, Any] = {}  # a module's first call's arguments besides tensors (again.py)
        self.buffers_read: set[str] = set()  # the module's buffers that are nodes (buffers.read_tensor)
        self.holders: dict[str, list[str]] = {}  # child read, not called -> its holder's outputs (_held)
        own = {n for n, _ in self.module.named_parameters(recurse=False)} | set(self.module._buffers)
        self.namer = Namer({n for n, _ in self.module.named_children()} | own)
        self.input_name = input_name  # given: a group's inputs keep their outer names (one, or one a tensor)
        self.unread_given: set[str] = set()  # nodes given to an argument forward never reads
        self.keyed: set[str] = set()  # children whose calls are nodes at their keys (loops.keyed_heads)

    def run(self) -> Body:
        found = find_loops(self.graph, self.module, self._is_tensor, self.where)
        self.keyed = keyed_heads(self.graph, self.module, found)
        loops = {_first(loop): loop for loop in found if not (isinstance(loop, Refused) and loop.head)}
        done: set[fx.Node] = set()
        for n in self.graph.nodes:
            loop = loops.get(n)
            if isinstance(loop, Refused):
                raise loop.error
            if loop is not None:
                for p in loop.before:  # a parameter read inside the loop: its node comes first
                    self._get_attr(p)
                self._loop(loop)
                done.update((*loop.nodes, *loop.before))
            elif n not in done:
                getattr(self, f"_{n.op}")(n)
        self._check_unused()
        self.nodes = groups.without_unread(self.nodes, self.unread_given, self.outputs)
        return Body(self.module, self.t.path, self.inputs, self.nodes, self.outputs, self.notes, self.output_keys)

    def _is_tensor(self, n: fx.Node) -> bool:
        records = n.meta.get(META) or []
        return bool(records) and has_tensor(records[0])

    def values(self, n: fx.Node) -> tuple[Any, Any]:
        records = n.meta.get(META) or []
        if len(records) != 2:  # never run: a branch the recorded runs did not take
            raise ImportFailed(f"`{n.name}` was not run on the example inputs", where=self.where)
        return records[0], records[1]

    def arg(self, value: Any) -> Any:
        return _plain(fx.node.map_arg(value, lambda n: self.env[n]))

    # ---- fx node kinds -----------------------------------------------------------------

    def _placeholder(self, n: fx.Node) -> None:
        if self.where and str(n.target) in groups.unread(self.t):  # not given (DlaTree's `shortcut`, set anew)
            return
        given = self.input_name
        if isinstance(given, list) and str(n.target) not in self.t.literal:  # the k-th tensor the caller gives
            k = groups.given_before(self.t, n)
            given = given[k] if k < len(given) else None
        if isinstance(given, str):  # every input is the one tensor the caller gives
            name = given
            if name not in self.inputs:
                self.inputs.append(name)
                self.namer.taken.add(name)
            self.env[n] = Ref(name, self.values(n))
            return
        wish = passing.placeholder_name(self.t, str(n.target)).lstrip("*")
        if wish.isidentifier() and not keyword.iskeyword(wish) and wish not in self.namer.taken:
            name = wish  # an input is no attribute: `type`, `meta`, `code` or `graph` are names it can have
            self.namer.taken.add(name)
        else:
            name = self.namer.fresh(wish)
        self.inputs.append(name)
        self.env[n] = Ref(name, self.values(n))
        if str(n.target) in self.t.batch_args:  # the tensor the caller reads the batch size from
            self.env[n] = batch_value(*self.values(n), name)

    def _get_attr(self, n: fx.Node) -> None:
        target = str(n.target)
        called = {str(m.target).split(".")[0] for m in self.graph.nodes if m.op == "call_module"}
        if (
            target.split(".")[0] in called  # the child is a node: its keys are kept by it
            and n.users
            and all(u.target is getattr and u.args[1:] in (("device",), ("dtype",)) for u in n.users)
        ):
            self.env[n] = None  # a called child's `self.proj.weight.device`: where and how to compute, not a value
            return
        value = getattr(self.module, target, None) if "." not in target else None
        again = target in self.buffers_read  # a node already (a tensor fx computed from it came first)
        read = (
            []
            if again
            else read_tensor(self.module, target, self.namer.fresh, self.where, self.notes, self.buffers_read)
        )
        if read or again:  # a buffer (keeping its key), or a tensor fx computed from one
            self.nodes.extend(read)
            tensor = getattr(self.module, target)
            self.env[n] = Ref(
                str(read[-1].name) if read else target, (TensorMeta(tuple(tensor.shape), tensor.dtype),) * 2
            )
            return
        if "." in target and (self._held(n, target) or self._child_table(n, target)):
            return
        if not isinstance(value, torch.nn.Parameter):
            buffers = dict(self.module.named_buffers())
            what = (
                "a buffer"
                if target in buffers
                else "a tensor that is no parameter"
                if "." in target
                else "a tensor that is not its own parameter"
            )
            head = target.split(".")[0]
            if isinstance(getattr(self.module, head, None), (torch.nn.ParameterList, torch.nn.ParameterDict)):
                kind = type(getattr(self.module, head)).__name__
                raise ImportFailed(
                    f"forward reads `{target}`, an item of nn.{kind} `{head}`: a spec's `Parameter` node is a "
                    f"parameter of its own (the key `{head}.0` would need a node named `0` inside a node `{head}`)",
                    where=self.where,
                    hint="make each a parameter of the module (self.w0 = nn.Parameter(...))",
                )
            if "." in target:  # not made a holder (_held)
                raise ImportFailed(
                    f"forward reads `{target}`, {what} of its child `{head}`, which forward also calls or whose "
                    "children hold weights: a spec reads a child's tensors only from a child it never calls "
                    "that holds them all itself",
                    where=self.where,
                )
            raise ImportFailed(
                f"forward reads `{target}`, {what}: a spec holds only parameters and buffers of its own nodes",
                where=self.where,
            )
        self.nodes.append(SNode("Parameter", target, {"shape": list(value.shape), "init": init_of(value)}))
        self.env[n] = Ref(target, (TensorMeta(tuple(value.shape), value.dtype),) * 2)

    def _child_table(self, n: fx.Node, target: str) -> bool:
        """A child's buffer in no state_dict (timm's rotary ``rope.bands``) that no holder holds: a
        Buffer of this module's with its value (no key is lost: none was written)."""
        owner, _, leaf = target.rpartition(".")
        if leaf not in self.module.get_submodule(owner)._non_persistent_buffers_set:
            return False
        held = self.module.get_buffer(target)
        node = buffer_node(self.namer.fresh(target), held, False, self.where, self.notes)
        self.nodes.append(node)
        self.env[n] = Ref(str(node.name), (TensorMeta(tuple(held.shape), held.dtype),) * 2)
        return True

    def _held(self, n: fx.Node, target: str) -> bool:
        """``self.qkv.weight`` of a child forward never calls: an output of the child's holder
        node (``buffers.holder_node``, made at the first such read)."""
        head, _, rest = target.partition(".")
        if any(m.op == "call_module" and str(m.target).split(".")[0] == head for m in self.graph.nodes):
            return False  # a child called as a module is its node already
        if head not in self.holders:
            reads = [str(m.target) for m in self.graph.nodes if m.op == "get_attr"]
            holder = holder_node(self.module, head, reads, self.t.child_path(head), self.where, self.notes)
            if holder is None:
                return False
            self.namer.taken.add(head)
            self.nodes.append(holder)
            self.holders[head] = holder.use.outputs if holder.use else []
        outputs = self.holders[head]
        if rest not in outputs:
            return False
        tensor = getattr(getattr(self.module, head), rest)
        meta = (TensorMeta(tuple(tensor.shape), tensor.dtype),) * 2
        if len(outputs) == 1:
            self.env[n] = Ref(head, meta)
            return True
        item = SNode("item", self.namer.fresh(f"{head}_{rest}"), {"index": outputs.index(rest)}, [head])
        self.nodes.append(item)
        self.env[n] = Ref(str(item.name), meta)
        return True

    def _call_module(self, n: fx.Node) -> None:
        target = str(n.target)
        if "." in target and target.partition(".")[0] in self.keyed:
            self._keyed_call(n, target)
            return
        if "." in target:
            self._list_call(n, target)
            return
        sub = self.t.calls[n]
        # `for mod in self` over numbered children: the module becomes a group (groups.numbered_group)
        if self.t.kind == "custom" and not NODE_NAME.match(target) and not target.isdigit() and has_state(sub.module):
            raise numbered_child(self.t, target)
        self._add_call(n, self._named_call(n, target, sub), sub)

    def _add_call(self, n: fx.Node, result: Result, sub: Traced) -> None:
        """A module call's result; a tuple of tensors and sizes (``return x, (H, W)``) read as both."""
        self._add(n, result)
        if sub.kind != "layer":
            self._sizes_beside(n)

    def _sizes_beside(self, n: fx.Node) -> None:
        """A call's tuple of tensors and sizes read as both (a loop's item's too: MViTv2's blocks)."""
        first, second = self.values(n)
        if isinstance(first, tuple) and not all(has_tensor(v) for v in first):
            self.env[n] = with_sizes(self, n, first, second)

    def _named_call(self, n: fx.Node, target: str, sub: Traced) -> Result:
        """A module's call as a node named after it; a module with weights called again is a
        ``same_as`` node calling the first call's module on its own inputs."""
        args, kwargs = self.arg(n.args), self.arg(n.kwargs)
        if self.calls.get(target) and has_state(sub.module):
            return same_as_node(target, self.namer.fresh(target), self.first.get(target), args, kwargs, self.where)
        if norm_base(sub.module) is None:  # (a norm read with its activation is several nodes: no `same_as`)
            self.first[target] = fixed_args(args, kwargs)
        return self._module_call(n, self._call_name(target), sub)

    def _keyed_call(self, n: fx.Node, target: str) -> None:
        """A call of a module inside a child (``self.head.fc``; ``self.convs[0]`` in a loop no group
        holds, ``loops.keyed_heads``) -> a node at its key, ``convs.0``; one that is an op (a module
        without weights written inline) holds no module, so its name is an identifier."""
        result = self._named_call(n, target, self.t.calls[n])
        holds = isinstance(result, SNode) and (result.use or result.nodes is not None or result.op in LAYERS)
        if isinstance(result, SNode) and result.name == target and not holds:
            result = result.copy(name=self.namer.fresh(target))
        self._add_call(n, result, self.t.calls[n])

    def _module_call(self, n: fx.Node, name: str, sub: Traced) -> Result:
        args, kwargs = self.arg(n.args), self.arg(n.kwargs)
        if sub.kind == "layer" and norm_base(sub.module) is not None:  # timm's BatchNormAct2d
            return norm_act_nodes(self, n, name, sub, args, kwargs)
        if sub.kind == "layer" and same_padded(sub.module) is not None:  # timm's Conv2dSame
            return same_conv_nodes(self, n, name, sub, args, kwargs)
        if sub.kind == "layer":
            return self._layer(name, sub, args, kwargs)
        return _module_node(name, sub, self._bind(sub, args, kwargs), self)

    def _list_call(self, n: fx.Node, target: str) -> None:
        """``for block in self.blocks: x = block(x)`` over an nn.ModuleList: a group named ``blocks``
        (its children keep their keys, ``blocks.0...``), when the calls chain every item in order
        (a call inside another child is a node at its key, ``_keyed_call``)."""
        head, _, index = target.partition(".")
        items = getattr(self.module, head)
        k, users = int(index), list(n.users)
        last = k == len(items) - 1
        chained = last or (len(users) == 1 and users[0].op == "call_module" and users[0].target == f"{head}.{k + 1}")
        group = self.nodes[-1] if self.nodes and self.nodes[-1].name == head else None
        if not chained or (k == 0) == (group is not None):
            between = "" if chained or len(users) != 1 else f" (`{head}.{k}` goes to `{_callee(users[0])}`)"
            raise ImportFailed(
                f"forward calls the items of nn.ModuleList `{head}` other than one after another, in "
                f"order{between}: a group holds only them, numbered by position",
                where=self.where,
                hint="make each item a module that does the whole step (a block)",
            )
        node = self._module_call(n, index, self.t.calls[n])
        if isinstance(node, Ref):  # an item that is the identity in the spec keeps its place
            node = SNode("Identity", index, None, [node.name])
        assert isinstance(node, SNode)
        inputs = _named_inputs(node, head, self.where)
        if group is None:
            self.namer.taken.add(head)
            group = SNode("Sequential", head, None, inputs, nodes=[])
            self.nodes.append(group)
        elif _side_inputs(inputs) != _side_inputs(group.inputs):
            raise ImportFailed(
                f"forward gives `{target}` other inputs besides the previous item's output than "
                f"`{head}.0`: a repeat passes the same ones to every copy",
                where=self.where,
            )
        assert group.nodes is not None
        group.nodes.append(node.copy(name=None, inputs=None))
        self.env[n] = Ref(head, self.values(n))
        self._sizes_beside(n)

    def _loop(self, loop: Loop) -> None:
        """An unrolled loop over nn.ModuleList ``head`` (``loops.py``) -> one group named ``head``:
        its items first, unnamed (named 0, 1, ... by position: their keys), then the ops between
        them, named; the group's value is its last node (an ``Identity`` where that is an item), or
        the tuple of its ``outputs`` where the loop gives several, each read by an ``item`` node.
        The values it reads from before it are its inputs, by the names they have outside."""
        outer, path = {s: self.env[s] for s in loop.sources}, self.t.child_path(loop.head)
        inside = {s: inside_loop(s, v, self.module, path, self.where) for s, v in outer.items()}
        names = list(dict.fromkeys(r.name for v in outer.values() for r in refs_in(v)))
        outer_nodes, outer_namer = self.nodes, self.namer
        self.nodes, self.namer = [], Namer({inner_name(name) for name in names})
        self.env.update(inside)
        try:
            items: list[SNode] = []
            for n in loop.nodes:
                if n in loop.items:  # in order: the loop finds the items called once each, 0 first
                    items.append(self._item(n, len(items), loop.head))
                else:
                    getattr(self, f"_{n.op}")(n)
            if any(self.env[s] != v for s, v in inside.items()):
                raise loop_refused(self.module, path, "changes its input in place", self.where)
            outs = [self.env[o] for o in loop.outs]
            if not all(isinstance(out, Ref) for out in outs):
                raise loop_refused(self.module, path, "gives a tuple", self.where)
            last = self.nodes[-1].name if self.nodes else str(len(items) - 1)  # the group's value, as it is
            if len(outs) == 1 and outs[0].name != last:
                self.nodes.append(SNode("Identity", self.namer.fresh("out"), None, [outs[0].name]))
            ops = self.nodes
        finally:
            self.nodes, self.namer = outer_nodes, outer_namer
            self.env.update(outer)
        self.namer.taken.add(loop.head)
        several = [o.name for o in outs] if len(outs) > 1 else None  # a tuple, each read by `item`
        self.nodes.append(SNode(GROUP_OP, loop.head, None, names, nodes=[*items, *ops], outputs=several))
        for k, o in enumerate(loop.outs):
            value = Ref(loop.head, self.values(o))
            if several:
                self.nodes.append(SNode("item", self.namer.fresh(f"{loop.head}_{k}"), {"index": k}, [loop.head]))
                value = Ref(str(self.nodes[-1].name), value.meta)
            self.env[o] = value

    def _item(self, n: fx.Node, k: int, head: str) -> SNode:
        """Item ``k`` of a loop's list, as an unnamed node of its group with its inputs written out."""
        node = self._module_call(n, str(k), self.t.calls[n])
        if isinstance(node, Ref):  # an item that is the identity in the spec keeps its place
            node = SNode("Identity", str(k), None, [node.name])
        if not isinstance(node, SNode):
            raise ImportFailed(f"`{head}.{k}` is read as several nodes, so it cannot keep its place", where=self.where)
        self.env[n] = Ref(str(k), self.values(n))
        self._sizes_beside(n)
        return node.copy(name=None)

    def _call_function(self, n: fx.Node) -> None:
        first, second = self.values(n)
        if not has_tensor(first):  # a size or a number: folded
            self.env[n] = first if first == second else BatchSize((first, second), size_source(self.arg(n.args)))
            return
        if isinstance(n.target, type) and issubclass(n.target, tuple):  # GoogLeNetOutputs(x, aux2, aux1)
            args, kwargs = self.arg(n.args), self.arg(n.kwargs)
            self.env[n] = (*args, *(kwargs[f] for f in getattr(n.target, "_fields", ())[len(args) :] if f in kwargs))
            return
        key = call_name(n.op, n.target)
        if key in ("torch.cat", "torch.concat") and self._hoisted_cat(n):
            return
        args, kwargs = self.arg(n.args), self.arg(n.kwargs)
        if key != "operator.getitem" and any(isinstance(a, Pieces) for a in [*args, *kwargs.values()]):
            raise ImportFailed(
                f"`{n.name}` takes the whole tuple of an unbind or split: a spec reads its pieces one by one",
                where=self.where,
            )
        name = self.namer.fresh(n.name)
        call = Call(name, self.where, Ref(name, (first, second)), self.namer.fresh, key, self.notes)
        self._add(n, convert_call(call, key, args, kwargs))
        changed = n.args[0] if n.args else None
        in_place = (key.startswith("Tensor.") and key.endswith("_")) or n.kwargs.get("inplace") is True
        in_place = in_place or n.target is put  # `t[i] = v`: later reads of t see the put
        if in_place and isinstance(changed, fx.Node) and isinstance(self.env.get(changed), Ref):
            self.env[changed] = self.env[n]  # `x.relu_()`: later reads of x see the new value

    _call_method = _call_function

    def _output(self, n: fx.Node) -> None:
        value = self.arg(n.args[0])
        if isinstance(value, dict) and not self.where:  # the model's own: `output_type: dict`
            self.output_keys = list(value)
            value = list(value.values())
            if not all(isinstance(k, str) and k.isidentifier() for k in self.output_keys):
                raise ImportFailed(
                    f"forward returns a dict with keys {self.output_keys}: a spec's output names are identifiers"
                )
        if isinstance(value, dict) and all(
            isinstance(k, str) for k in value
        ):  # a block's: read by key (functions._getitem)
            value = list(value.values())
        items = value if isinstance(value, (tuple, list)) else [value]
        if self.where and isinstance(value, (tuple, list)) and any(isinstance(v, Ref) for v in items):
            items = [v for v in items if not constant(v)]  # sizes (`x, (Hp, Wp)`): the caller has them
        if isinstance(value, dict) or not all(isinstance(v, Ref) for v in items):
            what = "a tensor or a tuple of tensors" + ("" if self.where else " (or a dict of them)")
            raise ImportFailed(f"forward returns something other than {what}", where=self.where)
        self.outputs = [v.name for v in items]

    # ---- helpers ---------------------------------------------------------------------------

    def _add(self, n: fx.Node, result: Result) -> None:
        if isinstance(result, Pieces):  # no node until a piece is read (but the source's own)
            self.nodes.extend(result.made)
            self.env[n] = result
            return
        if isinstance(result, Ref):
            self.env[n] = result
            return
        nodes = result if isinstance(result, list) else [result]
        if n.meta.get(TRAINING_ONLY):  # a call only the training-mode trace makes (trace.py)
            nodes = [node.copy(training_only=True) for node in nodes]
        self.nodes.extend(nodes)
        assert nodes[-1].name is not None  # the node a value comes from is named
        self.env[n] = Ref(nodes[-1].name, self.values(n))

    def _call_name(self, target: str) -> str:
        """The attribute's name on its first call; a stateless module called again gets a new name."""
        self.calls[target] = self.calls.get(target, 0) + 1
        if self.calls[target] == 1:
            self.namer.taken.add(target)
            return target
        return self.namer.fresh(target)  # stateless (one with weights: `same_as`, _named_call)

    def _layer(self, name: str, sub: Traced, args: tuple, kwargs: dict) -> SNode:
        params = inspect.signature(sub.module.forward).parameters
        bound = inspect.signature(sub.module.forward).bind(*args, **kwargs)
        tensors: dict[str, Ref] = {}
        for key, value in bound.arguments.items():
            if isinstance(value, Ref):
                tensors[key] = value
            elif key not in IGNORED_FLAGS and value != params[key].default:
                raise ImportFailed(
                    f"forward calls `{sub.path}` with {key}={value!r}: a spec passes only tensors to a layer",
                    where=self.where,
                )
        shapes = [r.sample_shape for r in tensors.values()]
        most = LAYERS[type(sub.module).__name__].max_inputs  # more (a padding mask) go by name
        positional = list(tensors) == list(params)[: len(tensors)] and (most is None or len(tensors) <= most)
        inputs: list[str] | dict[str, str] = (
            [r.name for r in tensors.values()] if positional else {k: r.name for k, r in tensors.items()}
        )
        return SNode(type(sub.module).__name__, name, node_args(sub.module, shapes, sub.path) or None, inputs)

    def _bind(self, sub: Traced, args: tuple, kwargs: dict) -> dict[str, Any]:
        if sub.method:  # a child's method, given nothing (methods.py)
            return {}
        bound = inspect.signature(sub.module.forward).bind(*args, **kwargs)
        out: dict[str, Any] = {}
        for key, value in bound.arguments.items():
            if key in sub.flat:  # a list traced as its tensors: an input each
                if isinstance(value, Ref) and isinstance(value.meta[0], tuple):
                    value = tuple_items(self, value, key, sub)  # another module's tuple, passed on whole
                elif isinstance(value, dict) or (isinstance(value, Ref) and isinstance(value.meta[0], dict)):
                    value = passing.dict_items(self, value, key, sub)  # a dict: its tensors, read by key
                if not isinstance(value, (list, tuple)):
                    raise ImportFailed(
                        f"`{sub.path}` is given `{key}`, a list or tuple another module returns, whole: a spec passes "
                        "tensors, so a module that takes a tuple takes each of its tensors by name",
                        where=self.where,
                    )
                out.update({f"{key}_{k}": v for k, v in enumerate(value) if v is not None})
            elif key in sub.batch_args:  # `pos_embed(B, H, W)`: given the tensor whose batch B is
                out[key] = batch_source(self, value, key, sub)
            elif key not in sub.literal and key not in groups.unread(sub):
                out[key] = value
            elif isinstance(value, Ref):  # given but never read: its node may be left unused
                self.unread_given.add(value.name)
        return out

    def _hoisted_cat(self, n: fx.Node) -> bool:
        """``torch.cat(input, 1)`` of a list the caller concatenated already (see ``module_node``)."""
        tensors = n.args[0] if n.args else n.kwargs.get("tensors")
        if not (isinstance(tensors, fx.Node) and tensors.op == "placeholder" and str(tensors.target) in self.hoisted):
            return False
        self.env[n] = Ref(self.env[tensors].name, self.values(n))
        return True

    def _check_unused(self) -> None:
        check_keys_called(self.graph, self.module, self.keyed, self.where)
        used = {str(n.target).split(".")[0] for n in self.graph.nodes if n.op in ("call_module", "get_attr")}
        for name, child in self.module.named_children():
            if name not in used and has_state(child):
                alias = next(
                    (k for k, m in self.module.named_modules(remove_duplicate=False) if m is child and k != name), ""
                )
                if alias and not self.where:  # the model's own: an alias the spec names (again.py)
                    continue
                raise ImportFailed(  # an alias: CoaT's `cpe1`, which its blocks hold and call as their `cpe`
                    f"`{name}` holds weights but forward (in eval mode) never calls it"
                    + (f", only as `{alias}` (one module under two names)" if alias else "")
                    + ": a spec cannot hold a module its forward does not use",
                    where=self.where,
                )
        for name, _ in self.module.named_parameters(recurse=False):
            if name not in used:
                raise ImportFailed(f"parameter `{name}` is never read by forward", where=self.where)
        kept = [
            k
            for k, b in self.module._buffers.items()  # in its state_dict: persistent buffers forward does not read
            if b is not None and k not in self.module._non_persistent_buffers_set and k not in self.buffers_read
        ]
        if kept:
            raise ImportFailed(
                f"{type(self.module).__name__} holds buffer `{kept[0]}` (a state_dict key) that forward never "
                "reads: a spec holds a buffer as a node that is used",
                where=self.where,
            )


def _module_node(name: str, sub: Traced, bound: dict[str, Any], parent: Converter) -> Result:
    """A call of a custom module or a Sequential, given its tensor arguments by parameter name."""
    hoisted = hoist_lists(name, sub, bound, parent)
    refs = [bound[k] if k not in hoisted else hoisted[k] for k in bound]
    numbered = sub.kind == "custom" and calls_numbered(sub)
    recursive = sub.kind == "custom" and groups.contains_itself(sub.module)  # written out as a group, level by level
    inner: str | list[str] | None = None  # a group's inputs keep their outer names (as shapes.group names them)
    if (numbered or recursive) and refs:  # one tensor maybe given twice (`f(x, [x])`), or several
        refs = groups.unclashed(refs, sub.module, parent.nodes, parent.namer.fresh)
        names = [inner_name(r.name) for r in refs]
        inner = names[0] if len(set(names)) == 1 else names
    body = Converter(sub, set(hoisted), inner).run()
    parent.notes.extend(body.notes)
    if sub.kind == "sequential":
        return group_node(name, body, refs)
    if numbered:
        return numbered_group(name, body, refs, sub)
    if recursive:
        return groups.recursive_group(name, body, refs)
    return block_use(name, *drop_unread(body, refs))
