"""Pydantic's validation errors -> one :class:`~netspec.errors.SpecValidationError` that names
the spec path as the user wrote it (short forms included), its line and column, and a hint."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..errors import SpecValidationError
from .source import Document, group_nodes

__all__ = ["spec_error_from_pydantic"]


def _error_path(err: ErrorDetails, data: Any) -> tuple[str | int, ...]:
    """pydantic's loc, minus union/validator tags that do not index the data."""
    path: list[str | int] = []
    cur = data
    for part in err["loc"]:
        if isinstance(cur, dict) and part in cur:  # noqa: SIM114 - one arm each, so mypy narrows `cur`
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
            path.append(part)
        elif part == "from_" and isinstance(cur, dict) and "from" in cur:
            cur = cur["from"]
            path.append("from")
        elif part == "nodes" and isinstance(cur, dict) and (group := group_nodes(cur)) is not None:
            cur = group[1]  # a group's nodes, however written (Document.raw_path maps it back)
            path.append("nodes")
    return tuple(path)


def _message(err: ErrorDetails) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return f"missing required key `{err['loc'][-1]}`"
    if kind == "extra_forbidden":
        return f"unknown key `{err['loc'][-1]}`"
    if kind in ("unknown_key", "unknown_op", "node_form", "node_name", "unknown_node_key", "bad_key", "netspec"):
        return msg
    if kind == "value_error":  # our validators' own sentences, without pydantic's frame
        return msg.removeprefix("Value error, ")
    if kind in ("too_short", "too_long"):  # "List should have at least 1 item after validation, not 0"
        return msg[0].lower() + msg[1:].replace(" after validation", "")
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    if len(shown) > 80:
        shown = shown[:77] + "..."
    msg = msg[0].lower() + msg[1:]
    if ", got " in msg:  # "input should be a valid integer, got a number with a fractional part"
        return f"{msg} ({shown})"
    return f"{msg}, got {shown}"


def spec_error_from_pydantic(e: ValidationError, doc: Document) -> SpecValidationError:
    """The first pydantic error as one located, readable SpecValidationError.

    >>> from netspec.compiler.spec import Spec
    >>> doc = Document({"name": "m", "inputs": {"x": [3]}, "nodes": ["ReLU"], "optimiser": {}})
    >>> try:
    ...     Spec.model_validate(doc.data)
    ... except ValidationError as e:
    ...     print(spec_error_from_pydantic(e, doc))
    <spec>: optimiser: unknown key `optimiser`; did you mean `optimizer`?
    """
    errors = e.errors()
    # Prefer the most specific error: our own messages first, then the deepest loc.
    own = ("netspec", "unknown_key", "unknown_op", "node_form", "unknown_node_key", "bad_key")
    errors.sort(key=lambda r: (r["type"] not in own, -len(r["loc"])))
    err = errors[0]
    path = _error_path(err, doc.data)
    ctx = err.get("ctx") or {}
    key_error = err["type"] in ("unknown_key", "extra_forbidden", "unknown_op", "unknown_node_key", "bad_key") or bool(
        err["type"] == "netspec" and ctx.get("key")
    )
    if err["type"] in ("unknown_key", "bad_key"):
        path = path + (ctx["key"],)
    if err["type"] in ("unknown_op", "node_form", "node_name", "unknown_node_key", "netspec"):
        path = path + tuple(ctx.get("subpath", ()))
    message = _message(err)
    is_param = (len(path) == 2 and path[0] == "params") or (
        len(path) == 4 and path[0] == "blocks" and path[2] == "params"
    )
    if is_param and err["type"] not in own:
        # Scalar is a union: pydantic's first member error ("should be a valid boolean") misleads
        got = err.get("input")
        message = f"parameter `{path[-1]}` must be a number, a string, true/false or null, got {type(got).__name__}"
    for opath, item in doc.overridden.items():
        if tuple(path[: len(opath)]) == tuple(opath):
            message += f" (set by --set {item})"
            break
    hint = ctx.get("hint") if err["type"] == "netspec" else None  # a SpecError raised in a validator
    if doc.origins:  # a value from an `extends` base, mixed with the spec's own
        from .extends import merge_hint

        hint = hint or merge_hint(doc, path)
    out = SpecValidationError(message, path=path, hint=hint)
    return out.with_location(doc.locate(path, key=key_error))
