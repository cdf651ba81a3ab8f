"""Registries: one per kind of thing a spec names (a loss, an optimizer, a data source, ...).

Every registry is a :class:`Registry`: a mapping from the name a spec writes to the entry
netspec builds from, written only by its ``register`` decorator (or, for the families netspec
takes from torch by introspection, by the fill function that runs on first use, so importing
netspec stays cheap). Looking a name up gives one located error with a did-you-mean;
``check`` also checks the keyword arguments a spec gives against the entry's signature.

The node names of the compiler (layers, ops, torchvision models, blocks) are resolved in
``names.py``, which imports the registries; this module imports none of them.

>>> COLORS = Registry("color")
>>> @COLORS.register("red")
... def red(shade: int = 0) -> str:
...     return "#f00"
>>> COLORS["red"] is red
True
>>> COLORS.lookup("rde", ("paint",))
Traceback (most recent call last):
netspec.errors.SpecError: <spec>: paint: unknown color `rde`; did you mean `red`?
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ..errors import SpecError, did_you_mean

T = TypeVar("T")
SpecPath = tuple[str | int, ...]

__all__ = ["Registry", "check_args"]


class Registry(Mapping[str, T], Generic[T]):
    """name -> entry for one kind of thing; ``register`` is the only writer.

    ``fill`` (optional) adds the entries netspec takes from a library (every torch.optim
    optimizer, say) on first use; ``refused`` names entries that exist in the library but cannot
    work in a spec, with the reason; ``passed`` names the arguments netspec passes itself
    (``params`` of an optimizer) and ``signature`` gives the callable whose keyword arguments a
    spec may set (default: the entry itself).
    """

    def __init__(
        self,
        kind: str,
        *,
        fill: Callable[[Registry[T]], None] | None = None,
        passed: tuple[str, ...] = (),
        signature: Callable[[T], Any] | None = None,
        hint: str | None = None,
        names: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.kind = kind
        self.passed = passed
        self.hint = hint
        self._signature = signature
        self._entries: dict[str, T] = {}
        self._refused: dict[str, str] = {}
        self._fill = fill
        # the names ``fill`` will add, known without running it (from netspec.nodes.catalog): until an
        # entry is read, `name in registry` and iterating need not import the library
        self._names = names

    # ---- writing ---------------------------------------------------------------------------

    def register(self, name: str | None = None, *, aliases: tuple[str, ...] = ()) -> Callable[[Any], Any]:
        """Decorator adding ``obj`` under ``name`` (default: its ``__name__``) and ``aliases``.

        The decorated object is returned unchanged; ``add`` registers a built entry instead.
        """

        def deco(obj: Any) -> Any:
            for key in (name or obj.__name__, *aliases):
                self.add(key, obj)
            return obj

        return deco

    def add(self, name: str, entry: T, *, replace: bool = False) -> None:
        """Register ``entry`` under ``name``; registering a name twice is a programming error
        unless ``replace`` says the new entry takes the old one's place."""
        self._ensure()
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} `{name}` is registered twice")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Take ``name`` out again (for tests, and for plug-ins that register temporarily)."""
        self._ensure()
        del self._entries[name]

    def refuse(self, name: str, message: str) -> None:
        """Name something a spec may not use, with the message (what and why) shown when it does."""
        self._refused[name] = message

    def _ensure(self) -> None:
        if self._fill is not None:
            fill, self._fill = self._fill, None  # before calling: fill() itself calls add()
            fill(self)

    # ---- reading ---------------------------------------------------------------------------

    def _known_names(self) -> Collection[str]:
        """The names, filling the registry only when they are not known otherwise."""
        if self._fill is not None and self._names is not None:
            return self._names()
        self._ensure()
        return self._entries

    def __getitem__(self, name: str) -> T:
        self._ensure()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._known_names())

    def __len__(self) -> int:
        return len(self._known_names())

    def __contains__(self, name: object) -> bool:
        return name in self._known_names()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"

    @property
    def refused(self) -> Mapping[str, str]:
        return dict(self._refused)

    def lookup(self, name: str, path: SpecPath = (), *, key: bool = False) -> T:
        """The entry called ``name``, or a SpecError at ``path`` with the reason or a did-you-mean
        (``key``: the name was written as a mapping key, which the error then points at)."""
        if name in self._refused:
            raise SpecError(self._refused[name], path=path, key=key)
        if name not in self:
            hint = (
                did_you_mean(name, [*self, *self._refused])
                or self.hint
                or f"known {self.kind}s: {', '.join(sorted(self))}"
            )
            raise SpecError(f"unknown {self.kind} `{name}`", path=path, hint=hint, key=key)
        return self[name]

    def check(self, call: Any, path: SpecPath = (), *, filled: tuple[str, ...] = ()) -> T:
        """Look up ``call.name`` and check ``call.args`` against the entry's signature.

        ``call`` is a spec entry with ``name``, ``args``, ``name_path`` and ``args_path`` (a
        :class:`netspec.training.spec.Call`); ``filled`` names arguments netspec works out when
        the spec leaves them out (a scheduler's ``total_steps``).
        """
        entry = self.lookup(call.name, call.name_path(path), key=getattr(call, "_form", None) == "key")
        target = self._signature(entry) if self._signature else entry
        check_args(target, call.args, call.args_path(path), what=call.name, skip=self.passed, filled=filled)
        return entry


def check_args(
    fn: Any,
    args: Mapping[str, Any],
    path: SpecPath,
    *,
    what: str,
    skip: tuple[str, ...] = (),
    filled: tuple[str, ...] = (),
) -> None:
    """Check keyword ``args`` against the signature of ``fn`` (a class or function).

    ``skip`` names arguments netspec passes itself (``params``, ``optimizer``, ``tensor``);
    ``filled`` names arguments netspec works out when they are missing (``total_steps``).
    Raises SpecError at ``path + (arg,)`` for an unknown argument, with a suggestion, and at
    ``path`` for a missing one.

    >>> import torch
    >>> check_args(torch.optim.SGD, {"lr": 0.1, "momentun": 0.9}, ("optimizer", "SGD"), what="SGD", skip=("params",))
    Traceback (most recent call last):
    netspec.errors.SpecError: <spec>: optimizer.SGD.momentun: SGD has no argument `momentun`; did you mean `momentum`?
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    params = {n: p for n, p in sig.parameters.items() if n not in skip and n != "self"}
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [
        n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    for key in args:
        if key not in named and not open_kwargs:
            hint = did_you_mean(str(key), named) or (
                f"its arguments are: {', '.join(named)}" if named else f"{what} takes no arguments"
            )
            raise SpecError(f"{what} has no argument `{key}`", path=(*path, key), hint=hint)
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in args
        and n not in filled
    ]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise SpecError(f"{what} needs argument{plural} " + ", ".join(f"`{m}`" for m in missing), path=path)
