"""torch.fx tracing with the real values at hand: control flow on sizes is decided at the traced size.

fx's tracer fails where a forward turns a traced value into a Python value: ``if H % 7:``,
``int(math.sqrt(N))``, ``range(x.shape[1])``, ``for s in x.shape``, ``len(x)``. A spec has fixed
input sizes, so :class:`SizeTracer` answers such a question with the value the proxy has on the
example inputs (computed lazily: only the nodes it depends on), while tensors, and sizes used as
values, stay in the graph. Every answer is a decision the spec keeps:

- one on a size leaves a guard node (:func:`fixed_at`) in the graph, so the run at the second batch
  size fails in one line where the answer depends on the batch (a spec's batch stays free);
  ``trace.py`` drops the guards once both runs are recorded;
- one on a size (not only a rank or dtype) is noted in ``pins``: the spec is right at this size;
- one on tensor values (``if x.sum() > 0``, ``int(t.max())``) is refused in one line.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import fx
from torch.fx.proxy import Proxy
from torch.utils._pytree import tree_map

from .errors import ImportFailed, class_path

# What a value is made of: a tensor; a number read from a tensor's values (data-dependent); a size;
# a rank, dtype or device (the same at every input size); or a constant.
Source = Literal["tensor", "data", "size", "meta", "const"]
SIZE_READS = {"size", "shape", "numel", "nelement"}
META_READS = {"dim", "ndim", "ndimension", "dtype", "device", "is_cuda", "layout", "is_floating_point"}
_TORCH_DIR = os.path.dirname(torch.__file__)
_HERE = os.path.dirname(__file__)


def fixed_at(value: Any, decided: Any, what: str, where: str) -> None:
    """A guard: ``value`` (a size at this run) still gives the Python value the trace decided on.

    >>> fixed_at(7, True, "`if`", "")
    >>> fixed_at(0, True, "`if`", "head")
    Traceback (most recent call last):
    netspec.importer.errors.ImportFailed: <spec>: head: `if` on a size that depends on the batch (True at batch 1, False at batch 2): a spec's batch stays free; compute it from sizes other than the batch
    """
    now = type(decided)(value)
    if now != decided:
        raise ImportFailed(
            f"{what} on a size that depends on the batch ({decided} at batch 1, {now} at batch 2): "
            "a spec's batch stays free",
            where=where,
            hint="compute it from sizes other than the batch",
        )


def source_line(skip: int = 0) -> str:
    """``file:line`` of the innermost frame outside torch and the importer: the forward being traced.

    >>> source_line().endswith(".py:1") or ":" in source_line()
    True
    """
    frame = inspect.currentframe()
    while frame is not None:
        file = frame.f_code.co_filename
        if not (file.startswith(_TORCH_DIR) or file.startswith(_HERE)):
            return f"{shown_file(file)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def shown_file(file: str) -> str:
    """A source file as a reader finds it: from its package (``timm/models/vit.py``) or relative.

    >>> shown_file("/x/lib/python3.11/site-packages/timm/models/vit.py")
    'timm/models/vit.py'
    """
    _, sep, tail = file.rpartition("site-packages" + os.sep)
    if sep:
        return tail
    relative = os.path.relpath(file)
    return file if relative.startswith("..") else relative


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return isinstance(value, (tuple, list)) and any(_holds_tensor(v) for v in value)


def _read(n: fx.Node) -> str | None:
    """The attribute a node reads off a tensor (`x.shape`, `x.size(1)`, `x.dim()`), or None."""
    if n.op == "call_method" and isinstance(n.target, str):
        return n.target
    if n.op == "call_function" and n.target is getattr and len(n.args) > 1 and isinstance(n.args[1], str):
        return n.args[1]
    return None


class SizeTracer(fx.Tracer):
    """fx's tracer, answering control flow on sizes from the example inputs (``example``: the
    forward's tensor arguments by name); without examples it fails where fx does."""

    def __init__(self, example: dict[str, Any] | None = None, path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.example = None if example is None else tree_map(_clone, example)  # in-place ops stay here
        self.path = path
        self.pins: list[str] = []  # the decisions that fixed the spec's input size
        self._values: dict[fx.Node, Any] = {}
        self._sources: dict[fx.Node, Source] = {}

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        self._root = root
        with _conversions(), _autocast_read(self), torch.no_grad():
            return super().trace(root, concrete_args)

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, *rest: Any, **more: Any) -> Proxy:
        """fx's, except that a fill of an indexed view (``t[a:b].zero_()``, ``.fill_(v)``, which
        change ``t``) is recorded as the :func:`put` it is: ``t[a:b] = 0``."""
        if kind == "call_function" and target is operator.getitem and self._is_none(args):
            return None  # type: ignore[return-value]  # `x, pos, pad = self.embed(x)` where pad is None
        view = args[0] if kind == "call_method" and target in _FILLS and args else None
        if isinstance(view, Proxy) and view.node.target is operator.getitem and not rest and not more:
            base, index = view.node.args  # fx nodes already
            value = self.create_arg(_FILLS[target](*args[1:], **kwargs))
            changed = self.create_node("call_function", put, (base, index, value), {})
            return self.proxy(self.create_node("call_function", operator.getitem, (changed, index), {}))
        return super().create_proxy(kind, target, args, kwargs, *rest, **more)

    def _is_none(self, args: tuple) -> bool:
        """Whether ``args`` (of a getitem) pick a ``None`` out of what a child module returned:
        that item is ``None`` in the forward too, so ``if pad is not None`` reads as Python does."""
        tuple_, index = args
        if self.example is None or not isinstance(tuple_, Proxy) or tuple_.node.op != "call_module":
            return False
        try:
            value = self._value(tuple_, "an item of a module's output")
        except Exception:  # inputs the child fails on: the run after the trace says so, in its words
            return False
        return isinstance(value, (tuple, list)) and isinstance(index, int) and value[index] is None

    # ---- the questions a forward asks of a proxy
    def to_bool(self, obj: Proxy) -> bool:
        return self._decide(obj, bool, "`if`")

    def to_number(self, obj: Proxy, kind: type, what: str) -> Any:
        return self._decide(obj, kind, what)

    def iter(self, obj: Proxy) -> Iterator:
        items: Any = obj  # a proxy's getitem is a graph node
        return iter([items[i] for i in range(self.length(obj, "a loop over"))])

    def keys(self, obj: Proxy) -> Any:
        value = self._value(obj, "`**`")
        return list(value.keys()) if isinstance(value, dict) else super().keys(obj)

    def length(self, obj: Proxy, what: str = "len() of") -> int:
        value = self._value(obj, what)
        if isinstance(value, torch.Tensor):  # its first dim: a size, guarded as one
            size = self.create_proxy("call_method", "size", (obj, 0), {})
            return self._decide(size, int, f"{what} a tensor")
        if isinstance(value, (tuple, list, dict)):  # a tuple's length, torch.Size's rank: fixed
            return len(value)
        raise ImportFailed(f"{what} a {type(value).__name__} at {source_line()}", where=self.path)

    def _decide(self, obj: Proxy, kind: type, what: str) -> Any:
        value = self._value(obj, what)
        source = self._sources[obj.node]
        where = source_line()
        if source in ("tensor", "data"):
            raise ImportFailed(
                f"{what} on a tensor's values in {class_path(self._root)}.forward at {where}: "
                "a spec's forward cannot depend on its data",
                where=self.path,
                hint="import a model whose forward decides on sizes or arguments only",
            )
        decided = kind(value)
        if source == "size":
            self.pins.append(f"{what} on a size at {where}")
            self.create_node("call_function", fixed_at, (obj.node, decided, what, self.path), {})
        return decided

    # ---- values, computed on demand
    def _value(self, obj: Proxy, what: str) -> Any:
        if self.example is None:  # fx's own refusal
            raise fx.proxy.TraceError(f"{what} on a traced value without example inputs")
        wanted, stack = set(), [obj.node]
        while stack:  # the nodes not yet computed it depends on
            n = stack.pop()
            if n not in self._values and n not in wanted:
                wanted.add(n)
                stack.extend(n.all_input_nodes)
        with _real_modules():
            for n in obj.node.graph.nodes:  # in graph order: inputs first
                if n in wanted:
                    self._values[n] = self._run(n)
                    self._sources[n] = self._source(n, self._values[n])
        return self._values[obj.node]

    def _run(self, n: fx.Node) -> Any:
        args = fx.node.map_arg(n.args, self._values.__getitem__)
        kwargs = fx.node.map_arg(n.kwargs, self._values.__getitem__)
        if n.op == "placeholder":
            assert self.example is not None
            return self.example[str(n.target).lstrip("*")]
        if n.op == "get_attr":
            return operator.attrgetter(str(n.target))(self._root)
        if n.op == "call_module":
            return self._root.get_submodule(str(n.target))(*args, **kwargs)
        if n.op == "call_method":
            return getattr(args[0], str(n.target))(*args[1:], **kwargs)
        return n.target(*args, **kwargs)  # type: ignore[operator]

    def _source(self, n: fx.Node, value: Any) -> Source:
        if _holds_tensor(value):
            return "tensor"
        read = _read(n)
        first = n.args[0] if n.args else None
        if read is not None and isinstance(first, fx.Node) and self._sources.get(first) == "tensor":
            return "meta" if read in META_READS else "size" if read in SIZE_READS else "data"
        sources = {self._sources[a] for a in n.all_input_nodes}
        order: tuple[Source, ...] = ("tensor", "data", "size", "meta")
        for source in order:
            if source in sources:
                return "data" if source == "tensor" else source
        return "const"


@contextlib.contextmanager
def _real_modules() -> Iterator[None]:
    """fx's patches off (module calls and attributes, wrapped functions) and its tracing flag
    down, so that the children run as they do outside a trace."""
    from torch.fx import _symbolic_trace as st

    get_flag, set_flag = _tracing_flag(st)
    tracing = get_flag()
    set_flag(False)
    try:
        with st._maybe_revert_all_patches():
            yield
    finally:
        set_flag(tracing)


def _tracing_flag(st: Any) -> tuple[Callable[[], bool], Callable[[bool], None]]:
    """Read and set fx's is-tracing flag: a thread-local behind functions since torch 2.12, a
    module global before (torch 2.11)."""
    names = ("_get_is_fx_tracing", "_set_is_fx_tracing")  # by name: each torch's stubs know one form
    if hasattr(st, names[0]):
        return getattr(st, names[0]), getattr(st, names[1])
    flag = "_is_fx_tracing_flag"
    return (lambda: bool(getattr(st, flag))), (lambda value: setattr(st, flag, value))


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def put(tensor: torch.Tensor, index: Any, value: Any) -> torch.Tensor:
    """``tensor[index] = value`` as a call: fx records calls, not statements; the tensor is changed
    in place and returned, as an in-place method returns it (the converter reads it as the ``put`` op).

    >>> put(torch.zeros(3), slice(1, None), 2.0)
    tensor([0., 2., 2.])
    """
    tensor[index] = value
    return tensor


def _setitem(self: Proxy, index: Any, value: Any) -> None:
    """``t[..., a:b] = v`` on a traced tensor: a :func:`put` node (fx has no item assignment)."""
    if not isinstance(self.tracer, SizeTracer):
        raise TypeError("'Proxy' object does not support item assignment")
    self.tracer.create_proxy("call_function", put, (self, index, value), {})


# in-place fills of a view -> the number they write
_FILLS: dict[str, Callable[..., Any]] = {"zero_": lambda: 0.0, "fill_": lambda value: value}


def _len(self: Proxy) -> int:
    if isinstance(self.tracer, SizeTracer):
        return self.tracer.length(self)
    return _ORIGINAL_LEN(self)


def _number(kind: type, what: str) -> Any:
    def convert(self: Proxy) -> Any:
        if isinstance(self.tracer, SizeTracer):
            return self.tracer.to_number(self, kind, what)
        raise TypeError(f"{kind.__name__}() argument must be a real number, not 'Proxy'")

    return convert


_ORIGINAL_LEN = Proxy.__len__
_CONVERSIONS = {
    "__len__": _len,
    "__int__": _number(int, "`int()`"),
    "__index__": _number(int, "a size used as an index"),
    "__float__": _number(float, "`float()`"),
    "__setitem__": _setitem,
}


@contextlib.contextmanager
def unwrapped() -> Iterator[None]:
    """The functions ``torch.fx.wrap`` keeps whole (torchvision's ``shifted_window_attention``)
    traced through, as any other Python function is, but for those in :data:`KEPT_WHOLE`
    (``functions.handles`` read them as calls): a spec has ops, not such calls, and control
    flow on sizes inside them is decided at the traced size (:class:`SizeTracer`); the tensor methods
    that take sizes recorded as calls where a traced size is among their arguments."""
    from torch.fx import _symbolic_trace as st

    saved, methods = dict(st._wrapped_fns_to_patch), list(st._wrapped_methods_to_patch)
    for key, space in saved.items():  # a function the converter reads as a call stays one
        fn = space.get(key[1])
        if f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}" not in KEPT_WHOLE:
            del st._wrapped_fns_to_patch[key]
    st._wrapped_methods_to_patch.extend((torch.Tensor, m) for m in _SIZED_METHODS if (torch.Tensor, m) not in methods)
    try:
        yield
    finally:
        st._wrapped_fns_to_patch.update(saved)
        st._wrapped_methods_to_patch[:] = methods


# functions the converter reads as one call (`module.qualname`): `functions.handles` adds its keys
KEPT_WHOLE: set[str] = set()

# methods taking sizes, called on a tensor that is no traced value (a buffer) with traced sizes:
# torch's argument parser reads the sizes before fx sees a proxy among them
_SIZED_METHODS = ("expand", "view", "reshape", "repeat", "tile", "new_zeros", "new_ones", "new_full", "new_empty")


@contextlib.contextmanager
def _autocast_read(tracer: SizeTracer) -> Iterator[None]:
    """``with torch.autocast(device_type=x.device.type, enabled=False):`` (keeping a block in
    float32) traced as its body: the device is read from the example, and a disabled autocast
    changes nothing in float32, where a spec's forward runs. An enabled one is refused."""
    cls = torch.amp.autocast_mode.autocast
    original = cls.__init__

    def init(self: Any, device_type: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(device_type, Proxy):
            device_type = tracer.to_number(device_type, str, "autocast's `device_type`")
        enabled = kwargs.get("enabled", args[1] if len(args) > 1 else True)
        if enabled is not False:
            raise ImportFailed(
                f"an enabled torch.autocast at {source_line()}: a spec's ops run in the dtype of their inputs",
                where=tracer.path,
                hint="import a model that keeps autocast to the training loop (`train.amp`)",
            )
        original(self, device_type, *args, **kwargs)

    cls.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.__init__ = original  # type: ignore[method-assign]


# torch's factories, whose sizes torch's argument parser reads before fx sees a proxy among them
_FACTORIES = ("zeros", "ones", "full", "empty")


@contextlib.contextmanager
def _conversions() -> Iterator[None]:
    """Proxy's ``len()``, ``int()``, ``float()`` and index use ask the tracer while one traces;
    item assignment is recorded as a :func:`put` call, a factory of traced sizes
    (``torch.zeros(B, 1, 1, N)``) as a call."""
    from torch.fx._symbolic_trace import _create_wrapped_func

    saved = {k: Proxy.__dict__.get(k) for k in _CONVERSIONS}
    factories = {k: getattr(torch, k) for k in _FACTORIES}
    for k, f in _CONVERSIONS.items():
        setattr(Proxy, k, f)
    for k, f in factories.items():
        setattr(torch, k, _create_wrapped_func(f))
    try:
        yield
    finally:
        for k, f in saved.items():
            if f is None:
                delattr(Proxy, k)
            else:
                setattr(Proxy, k, f)
        for k, f in factories.items():
            setattr(torch, k, f)
