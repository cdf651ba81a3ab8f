"""Trace a module one level at a time and record every value at two batch sizes.

torch.fx traces each custom module's ``forward`` with all its children as leaves, so the
graph of every module instance is kept apart (the spec's blocks and groups follow the
module tree, and with it the state_dict keys). The traced graphs are then run with real
tensors at two batch sizes; every node's value is recorded in ``node.meta["netspec"]`` as a
small description (a tensor's shape and dtype, a size's number), so the converter can tell
tensors from sizes, and sizes that depend on the batch from those that do not.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from .concrete import SizeTracer, fixed_at, put, shown_file, unwrapped
from .errors import ImportFailed, class_path
from .kinds import Kind, kind_of, same_padded
from .methods import hoist_child_methods

BATCHES = (1, 2)  # two batch sizes: a size that differs between them is the batch
META = "netspec"  # node.meta key of the recorded values, one per batch size
TRAINING_ONLY = "netspec_training_only"  # node.meta key: a node only the training-mode trace has


@dataclass(frozen=True)
class TensorMeta:
    """What a recorded tensor was: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def describe(value: Any) -> Any:
    """A recorded value: tensors become :class:`TensorMeta`, containers are described item by item.

    >>> describe((torch.zeros(2, 3), 4, torch.Size([5])))
    (TensorMeta(shape=(2, 3), dtype=torch.float32), 4, (5,))
    """
    if isinstance(value, torch.Tensor):
        return TensorMeta(tuple(value.shape), value.dtype)
    if isinstance(value, (tuple, list)):  # torch.Size is a tuple too
        return tuple(describe(v) for v in value)
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value


class _OneLevel(SizeTracer):
    """fx's tracer with every child module a leaf: one module's own forward, nothing deeper;
    control flow on sizes is decided from ``example`` (``concrete.py``)."""

    def __init__(self, root: nn.Module, example: dict[str, Any] | None = None, path: str = "") -> None:
        super().__init__(example, path, autowrap_modules=(math,))
        self.root_module = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self.root_module


@dataclass
class Traced:
    """One call of one module: its graph (custom modules) and the modules it calls, per call site."""

    path: str  # attribute path from the root: `layer1.0`
    module: nn.Module
    kind: Kind
    graph: fx.Graph | None = None
    calls: dict[fx.Node, Traced] = field(default_factory=dict)  # call_module node -> the call's trace
    literal: dict[str, Any] = field(default_factory=dict)  # forward arguments fixed at this call
    pins: list[str] = field(default_factory=list)  # decisions on sizes that fixed the input size
    flat: dict[str, int] = field(default_factory=dict)  # list arguments traced as their tensors: their lengths
    keys: dict[str, list[str]] = field(default_factory=dict)  # those of them that are dicts: their keys, in order
    batch_args: list[str] = field(default_factory=list)  # arguments that follow the batch size (`pos_embed(B, H, W)`)
    first_call: tuple[tuple, dict] | None = field(default=None, repr=False)  # the arguments at batch size 1
    method: bool = False  # a method of the module the parent ran inline, called with nothing (methods.py)

    def child_path(self, target: str) -> str:
        return f"{self.path}.{target}" if self.path else target


def trace_module(
    module: nn.Module,
    path: str,
    literal: dict[str, Any],
    example: dict[str, Any] | None = None,
    pins: list[str] | None = None,
    flat: dict[str, int] | None = None,
) -> fx.Graph:
    """The graph of ``module.forward`` with its children as leaves; ``literal`` arguments (not
    tensors) are fixed, and the checks fx adds for them are dropped, as are ``torch._assert`` calls.
    With ``example`` (the tensor arguments' values) control flow on sizes is decided at those
    sizes, each decision on a size added to ``pins``; ``flat`` lists of tensors are traced as a
    placeholder per tensor (a Python list of them inside).

    >>> g = trace_module(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), "head", {})
    >>> [(n.op, n.target) for n in g.nodes]
    [('placeholder', 'input'), ('call_module', '0'), ('call_module', '1'), ('output', 'output')]
    """
    stand_in = _stand_in(module, literal, path)
    if example is not None and flat:  # fx names the placeholders of a list `x` x_1, x_2, ... (a dict's too)
        example = {**example, **{f"{k}_{i + 1}": v for k in flat for i, v in enumerate(_items(example.get(k)))}}
    tracer = _OneLevel(stand_in, example, path)
    try:
        lists: dict[str, Any] = {k: [fx.PH] * n for k, n in (flat or {}).items()}  # a dict's: one per key
        lists |= {k: dict.fromkeys(v, fx.PH) for k, v in (example or {}).items() if k in lists and isinstance(v, dict)}
        with unwrapped(), _state_kept(module, path):
            graph = tracer.trace(stand_in, concrete_args={**literal, **lists} or None)
    except ImportFailed:
        raise
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... with the reason
        reason = " ".join(str(e).split()) or type(e).__name__
        hint = None
        if type(module).__module__.startswith("torch.nn."):
            hint = f"netspec has no layer type {type(module).__name__} (`netspec layers layers` lists them)"
        raise ImportFailed(
            f"torch.fx cannot trace {class_path(module)}.forward{_failed_at(e)}: {reason}", where=path, hint=hint
        ) from None
    if pins is not None:
        pins += tracer.pins
    _drop_asserts(graph, set(literal))
    return graph


@contextlib.contextmanager
def _state_kept(module: nn.Module, path: str) -> Iterator[None]:
    """Trace with ``module``'s attributes and buffers as they were after: a forward that assigns
    a traced value to one (a cache, ``self.rel_indices = ...``) is refused, its value put back."""
    attrs, buffers = dict(vars(module)), dict(module._buffers)
    try:
        yield
    finally:
        now = {**vars(module), **module._buffers}
        changed = [k for k, v in now.items() if isinstance(v, fx.Proxy) and k in {**attrs, **buffers}]
        vars(module).update(attrs)
        module._buffers.update(buffers)
    if changed:
        raise ImportFailed(
            f"forward assigns `self.{changed[0]}`: a spec's forward changes no state of its modules",
            where=path,
            hint="compute it in __init__ (a buffer), or once before importing",
        )


def _failed_at(e: BaseException) -> str:
    """`` at file:line``: the innermost frame of the traceback outside torch and netspec."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/torch/" not in f.filename]
    frames = [f for f in frames if "/netspec/" not in f.filename]
    return f" at {shown_file(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""


class _EncoderChain(nn.Module):
    """``nn.TransformerEncoder``'s forward in eval mode without the fast-path checks fx cannot
    trace: its layers one after another (each given the masks it was given), then its norm."""

    def __init__(self, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.layers, self.norm = encoder.layers, encoder.norm

    def forward(self, src: Any, mask: Any = None, src_key_padding_mask: Any = None, is_causal: Any = None) -> Any:
        given = {"src_mask": mask, "src_key_padding_mask": src_key_padding_mask, "is_causal": is_causal}
        for layer in self.layers:
            src = layer(src, **{k: v for k, v in given.items() if v is not None})
        return src if self.norm is None else self.norm(src)


def _stand_in(module: nn.Module, literal: dict[str, Any], path: str) -> nn.Module:
    """What fx traces for ``module``: itself, or a module with the same children that computes
    the same in eval mode where torch's own forward has control flow fx cannot trace."""
    bound = vars(module).get("forward")
    if inspect.ismethod(bound) and bound.__self__ is module:  # `self.forward = self.forward_split_cat`
        return _bound_forward(module, bound.__func__)
    if type(module) is not nn.TransformerEncoder:
        return module
    if literal.get("src_key_padding_mask", 0) is None or not module.use_nested_tensor:
        return _EncoderChain(module)
    raise ImportFailed(
        "nn.TransformerEncoder with a padding mask runs as nested tensors in eval mode, which "
        "zeroes the padded positions, and no spec node does that",
        where=path,
        hint="build it with enable_nested_tensor=False",
    )


def _bound_forward(module: nn.Module, forward: Any) -> nn.Module:
    """``module`` as fx traces a module, from its class's ``forward``: an instance of a subclass
    whose ``forward`` is the one bound on the instance, sharing the instance's state (its
    ``__dict__``), so the children, parameters and state_dict keys are the module's own."""
    cls = type(module)
    sub: type[nn.Module] = type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__})
    stand_in: nn.Module = object.__new__(sub)
    stand_in.__dict__ = module.__dict__
    return stand_in


def _drop_asserts(graph: fx.Graph, fixed: set[str]) -> None:
    """Assertions check sizes at trace time only; a spec has fixed input sizes and none of them."""
    from torch.fx._symbolic_trace import _assert_is_none

    for node in reversed(list(graph.nodes)):
        if node.op == "call_function" and node.target in (torch._assert, _assert_is_none) and not node.users:
            graph.erase_node(node)
    graph.eliminate_dead_code(_is_impure)
    for node in list(graph.nodes):
        if node.op == "placeholder" and _base_name(node.target) in fixed and not node.users:
            graph.erase_node(node)


# methods that change a list in place: a list argument they change is traced as its tensors
_LIST_CHANGES = ("append", "extend", "insert", "pop", "remove", "clear")


def _is_impure(node: fx.Node) -> bool:
    """What dead-code removal keeps: module calls and in-place methods (`x.relu_()`) even unused."""
    if node.op in ("placeholder", "output", "call_module") or node.target in (fixed_at, put):
        return True
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if node.op == "call_method" and name in _LIST_CHANGES:  # a list argument changed: it is traced flat
        return True
    return name.endswith("_") and not name.endswith("__")


def _base_name(target: Any) -> str:
    """fx renames fixed arguments `mask` -> `mask_1`."""
    name = str(target).lstrip("*")
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


class _Recorder(fx.Interpreter):
    """Runs one traced module, recording values; traces the custom modules it calls on first use."""

    def __init__(self, traced: Traced, run: int) -> None:
        assert traced.graph is not None
        super().__init__(traced.module, graph=traced.graph)
        self.traced, self.run_index = traced, run
        self._current: fx.Node | None = None

    def run_node(self, n: fx.Node) -> Any:
        self._current = n
        value = super().run_node(n)
        records = n.meta.setdefault(META, [])
        if len(records) == self.run_index:
            records.append(describe(value))
        return value

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        node = self._current
        assert node is not None
        sub = self.traced.calls.get(node)
        if sub is None:
            sub = self.traced.calls[node] = _start_trace(
                self.traced.module.get_submodule(target), self.traced.child_path(target), args, kwargs
            )
            if any(_number_like(v) for v in sub.literal.values()):  # kept until the second run: it may follow the batch
                sub.first_call = (args, kwargs)
        if sub.graph is None:
            return super().call_module(target, args, kwargs)
        if sub.method:  # its graph takes nothing: the child's own tensors
            return _Recorder(sub, self.run_index).run()
        follow = _check_literal(sub, args, kwargs)
        if follow:
            _trace_with_batch(sub, follow)
        if self.run_index:
            sub.first_call = None
        return _run_traced(sub, self.run_index, args, kwargs)


def _number_like(value: Any) -> bool:
    """A number, or a tuple or list of numbers (a shape): what a batch size can be folded into."""
    if isinstance(value, (tuple, list)):
        return all(_number_like(v) for v in value)
    return isinstance(value, (int, float))


def _check_literal(sub: Traced, args: tuple, kwargs: dict) -> list[str]:
    """A module's arguments that are no tensors were fixed at its first call; those that change
    with the batch size (``pos_embed(B, H, W)``, ``shape=(B, H, W)``) are returned, to be traced
    as values (:func:`_trace_with_batch`); any other change would be wrong at every other size."""
    now = _literal_arguments(sub.module, args, kwargs)
    follow = []
    for key, first in sub.literal.items():
        if key in now and _number_like(first) and type(now[key]) is type(first) and now[key] != first:
            if not _follows_batch(first, now[key]):
                raise ImportFailed(
                    f"forward is given {key}={first!r} at batch size {BATCHES[0]} and {now[key]!r} at {BATCHES[1]}: "
                    "a value that follows the batch size other than as the batch size itself cannot be written "
                    "in a spec, whose nodes take tensors",
                    where=sub.path,
                    hint="compute it inside the module from its input (x.shape[0]), or broadcast instead",
                )
            follow.append(key)
    return follow


def _follows_batch(first: Any, now: Any) -> bool:
    """Whether a number, or each number of a shape, is the batch size or the same at both runs.

    >>> _follows_batch((1, 32, 32), (2, 32, 32)), _follows_batch(3, 6)
    (True, False)
    """
    if isinstance(first, (tuple, list)):
        return len(first) == len(now) and all(_follows_batch(a, b) for a, b in zip(first, now))
    return first == now or (first, now) == BATCHES


def _trace_with_batch(sub: Traced, keys: list[str]) -> None:
    """Trace a module again with the arguments ``keys``, which follow the batch size, as values
    of its graph (a size the spec reads from a tensor the caller gives: ``convert.py``), and
    record its run at the first batch size again."""
    assert sub.first_call is not None
    args, kwargs = sub.first_call
    sub.batch_args = keys
    sub.literal = {k: v for k, v in sub.literal.items() if k not in keys}
    bound = inspect.signature(sub.module.forward).bind(*args, **kwargs)
    example = {k: v for k, v in bound.arguments.items() if k not in sub.literal}
    sub.pins.clear()
    sub.calls.clear()
    sub.graph = trace_module(sub.module, sub.path, sub.literal, example, sub.pins, sub.flat or None)
    _run_traced(sub, 0, args, kwargs)


def _start_trace(module: nn.Module, path: str, args: tuple, kwargs: dict) -> Traced:
    """The trace of one call: a custom module's forward is traced with its arguments that are not
    tensors fixed to their values at this call."""
    kind = kind_of(module)
    traced = Traced(path, module, kind)
    if same_padded(module):  # read whole, not traced: its decision on sizes is pinned here
        traced.pins.append(str(same_padded(module)))
    if kind != "layer":  # a Sequential too: the modules in it are traced through its forward
        traced.literal = _literal_arguments(module, args, kwargs)
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        example = {k: v for k, v in bound.arguments.items() if k not in traced.literal}
        try:
            traced.graph = trace_module(module, path, traced.literal, example, traced.pins)
        except ImportFailed:  # `x[1]` of a list argument fails on the proxy fx gives for it
            traced.flat = _flat_lists(None, module, args, kwargs)
            if not traced.flat:
                raise
        else:
            traced.flat = _flat_lists(traced.graph, module, args, kwargs)
        traced.keys = {k: list(v) for k, v in bound.arguments.items() if k in traced.flat and isinstance(v, dict)}
        if traced.flat:
            traced.pins.clear()  # traced again: its decisions are recorded again
            traced.graph = trace_module(module, path, traced.literal, example, traced.pins, traced.flat)
        _hoist_methods(traced)
    return traced


def _hoist_methods(traced: Traced) -> None:
    """A child's method the forward ran inline, moved into a call of the child with its own
    trace (``methods.py``)."""
    assert traced.graph is not None
    calls = hoist_child_methods(traced.module, traced.graph, lambda m: kind_of(m) == "custom")
    for call, (head, graph) in calls.items():
        child = traced.module.get_submodule(head)
        traced.calls[call] = Traced(traced.child_path(head), child, "custom", graph=graph, method=True)


def _flat_lists(graph: fx.Graph | None, module: nn.Module, args: tuple, kwargs: dict) -> dict[str, int]:
    """The list arguments of tensors that forward does more with than concatenate whole (append
    to, index, unpack) in ``graph`` (all of them without one): traced again as a placeholder per
    tensor (a dict's: per key); a list only concatenated stays one (``pieces.hoist_lists``)."""
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    placeholders = {n.target: n for n in graph.nodes if n.op == "placeholder"} if graph else {}
    flat = {}
    for key, value in bound.arguments.items():
        items = list(_items(value)) if isinstance(value, (list, tuple, dict)) else []
        if not (items and all(isinstance(v, torch.Tensor) for v in items)):
            continue
        p = placeholders.get(key)
        if graph is None or (
            p is not None and not all(u.target in (torch.cat, torch.concat) and u.args[0] is p for u in p.users)
        ):
            flat[key] = len(value)
    return flat


def _literal_arguments(module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if not _holds_tensor(v)}


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple, dict)) and any(_holds_tensor(v) for v in _items(value))


def _items(value: Any) -> Any:
    """The values of a list, tuple or dict argument (nothing for None)."""
    return value.values() if isinstance(value, dict) else value or ()


def _run_traced(traced: Traced, run: int, args: tuple, kwargs: dict) -> Any:
    """Run a traced custom module on real values (its tensor arguments only), recording as it goes."""
    bound = inspect.signature(traced.module.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    values: list[Any] = []
    for key, value in bound.arguments.items():
        if key in traced.flat:
            values.extend(_items(value))  # a placeholder per tensor
        elif key not in traced.literal:
            values.append(value)
    if not traced.flat:
        return _Recorder(traced, run).run(*values)
    out = _Recorder(traced, run).run(*values, enable_io_processing=False)  # given flat already
    assert traced.graph is not None
    return traced.graph.process_outputs(out)  # fx flattened the outputs too


_SIZE_HINT = "check --input-size (token ids and masks need a dtype: tokens=16:int64, mask=16:bool)"


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def example_inputs(
    model: nn.Module,
    inputs: dict[str, tuple[int, ...]],
    dtypes: dict[str, str] | None,
    batch: int,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """Random inputs of the given per-sample shapes: floats from a normal distribution; integers
    below the smallest ``num_embeddings`` of the model's embeddings (else 0 or 1), as token ids
    are; booleans true one time in four (a padding mask that masks a few positions).

    >>> g = torch.Generator().manual_seed(0)
    >>> [t.dtype for t in example_inputs(nn.Embedding(5, 2), {"x": (3,), "m": (3,)}, {"x": "int64", "m": "bool"}, 2, g)]
    [torch.int64, torch.bool]
    """
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    out = []
    for name, shape in inputs.items():
        dtype = getattr(torch, (dtypes or {}).get(name, "float32"))
        if dtype.is_floating_point:
            out.append(torch.randn(batch, *shape, generator=generator).to(dtype))
        elif dtype is torch.bool:
            out.append(torch.rand(batch, *shape, generator=generator) < 0.25)
        else:
            out.append(torch.randint(0, min(sizes, default=2), (batch, *shape), generator=generator, dtype=dtype))
    return out


def _check_tensor_inputs(traced: Traced) -> None:
    """A spec input is one tensor: refuse, before running, a forward argument that is a dict
    (``batch["image"]``) or a tuple (``hidden[0]``, or LSTM's ``(h, c)`` passed whole)."""
    assert traced.graph is not None
    for p in traced.graph.nodes:
        if p.op != "placeholder" or p.target in traced.literal:
            continue
        for user in p.users:
            key = user.args[1] if user.target is operator.getitem and len(user.args) > 1 else None
            if isinstance(key, (str, int)):
                what = f"a dict (forward reads `{p.target}[{key!r}]`)" if isinstance(key, str) else "a tuple"
                raise ImportFailed(
                    f"forward argument `{p.target}` is {what}: a spec's inputs are tensors, one per name",
                    hint=f"import a module whose forward takes each tensor of `{p.target}` as its own argument",
                )
            sub = traced.module.get_submodule(str(user.target)) if user.op == "call_module" else None
            if isinstance(sub, nn.LSTM) and p in (user.args[1:] + tuple(user.kwargs.values())):
                raise ImportFailed(
                    f"forward argument `{p.target}` is the hidden state of LSTM `{user.target}`, the tuple (h0, c0): "
                    "a spec's inputs are tensors, one per name",
                    hint="import a module whose forward takes h0 and c0 (a spec writes `from: {input: x, hx: [h0, c0]}`)",
                )


def trace_model(
    model: nn.Module, inputs: dict[str, tuple[int, ...]], seed: int = 0, dtypes: dict[str, str] | None = None
) -> Traced:
    """Trace ``model`` (in eval mode) module by module, recording values at both batch sizes.

    ``inputs`` gives the per-sample shape of each tensor argument of ``forward``, in order;
    ``dtypes`` the dtype of those that are not float32.

    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.fc = nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x).relu()
    >>> t = trace_model(Net(), {"x": (4,)})
    >>> [(n.name, n.meta["netspec"]) for n in t.graph.nodes if n.op == "call_method"]
    [('relu', [TensorMeta(shape=(1, 2), dtype=torch.float32), TensorMeta(shape=(2, 2), dtype=torch.float32)])]
    """
    root = model.eval()
    if kind_of(root) != "custom":  # its children would be the spec's nodes: `0`, `1` or `weight`
        raise ImportFailed(
            f"the model is a {class_path(root)}, not a module with its own forward: a spec's "
            "top-level nodes need names, so state_dict keys like `0.weight` cannot be kept",
            hint="wrap it in a module whose forward calls it",
        )
    params = inspect.signature(root.forward).parameters
    literal = {k: p.default for k, p in params.items() if k not in inputs and p.default is not p.empty}
    generator = torch.Generator().manual_seed(seed)
    runs = [example_inputs(model, inputs, dtypes, batch, generator) for batch in BATCHES]
    _warm_up(root, runs[0])
    traced = Traced("", root, "custom", literal=literal)
    graph = trace_module(root, "", literal, dict(zip(inputs, runs[0])), traced.pins)
    traced.graph = _with_training_branches(root, graph, literal)
    _hoist_methods(traced)
    _check_tensor_inputs(traced)
    with torch.no_grad():
        for run, values in enumerate(runs):
            try:
                _Recorder(traced, run).run(*values)
            except ImportFailed:
                raise
            except Exception as e:
                reason = " ".join(str(e).split("While executing")[0].split())
                raise ImportFailed(
                    f"the traced forward fails on inputs of {', '.join(map(_size, inputs.values()))}: {reason}",
                    hint=_SIZE_HINT,
                ) from None
    _drop_guards(traced)
    return traced


def _warm_up(model: nn.Module, values: list[torch.Tensor]) -> None:
    """One forward before tracing, as the model's first use would be: a cache a module fills
    at its first call (ConViT's ``rel_indices`` for the input's size) is filled, so the trace
    reads it instead of recomputing it (and assigning a traced value to a buffer). A model
    that fails on the inputs fails again where the trace runs, which says so."""
    with torch.no_grad(), contextlib.suppress(Exception):
        model(*values)


def _with_training_branches(root: nn.Module, graph: fx.Graph, literal: dict[str, Any]) -> fx.Graph:
    """The root's graph, traced again in training mode when eval mode leaves children with weights
    uncalled (GoogLeNet's ``if self.training: aux1 = self.aux1(x)``): the nodes only that trace
    has are marked :data:`TRAINING_ONLY` (the spec's ``training_only``). The values are still
    recorded in eval mode; the children are traced in eval mode, as always.

    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.fc, self.aux = nn.Linear(4, 2), nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return (self.fc(x), self.aux(x)) if self.training else self.fc(x)
    >>> net = Net().eval()
    >>> g = _with_training_branches(net, trace_module(net, "", {}), {})
    >>> [(n.name, n.meta.get(TRAINING_ONLY)) for n in g.nodes if n.op == "call_module"]
    [('fc', None), ('aux', True)]
    """

    def called(g: fx.Graph) -> set[str]:
        return {str(n.target).split(".")[0] for n in g.nodes if n.op in ("call_module", "get_attr")}

    uncalled = {name for name, child in root.named_children() if name not in called(graph) and child.state_dict()}
    if not uncalled:
        return graph
    root.train()
    try:
        # no example values: deciding sizes would run the children in training mode, and that
        # updates BatchNorm's running statistics (the user's model must stay as it was)
        train = trace_module(root, "", literal)
    except ImportFailed:  # the eval graph's refusal (the child never called) is the one to give
        return graph
    finally:
        root.eval()
    if not uncalled & called(train):  # never called at all: the eval graph's refusal says so
        return graph
    seen = {n.name for n in graph.nodes}
    for n in train.nodes:
        if n.op not in ("placeholder", "output") and n.name not in seen:
            n.meta[TRAINING_ONLY] = True
    return train


def _drop_guards(traced: Traced) -> None:
    """The guards of decisions on sizes have checked the second batch size; the spec has none."""
    if traced.graph is not None:
        for node in list(traced.graph.nodes):
            if node.target is fixed_at:
                traced.graph.erase_node(node)
        _drop_asserts(traced.graph, set(traced.literal))
    for sub in traced.calls.values():
        _drop_guards(sub)


def pins(traced: Traced) -> list[str]:
    """Where the forward was specialised at the traced input size: ``path: what at file:line``.

    >>> pins(Traced("", nn.Identity(), "layer", pins=["`if` on a size at net.py:7"]))
    ['the model: `if` on a size at net.py:7']
    """
    found = [f"{traced.path or 'the model'}: {pin}" for pin in traced.pins]
    return found + [p for sub in traced.calls.values() for p in pins(sub)]
