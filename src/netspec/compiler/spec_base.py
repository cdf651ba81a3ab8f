"""The pydantic base every spec model uses: unknown keys are errors, with a did-you-mean."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ..errors import SpecError, did_you_mean

#: The dtypes a spec names: an input's, the `to` op's, a buffer's (nodes.functional maps them to torch's).
DType = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]


@contextlib.contextmanager
def reported_at_spec_path() -> Iterator[None]:
    """Let a validator raise :class:`SpecError` with a path relative to the model it validates.

    pydantic only collects its own error types, so the SpecError travels as a
    ``PydanticCustomError`` of type ``netspec``; :func:`netspec.compiler.spec_errors.spec_error_from_pydantic`
    puts the model's place in the document in front of the path and locates it.

    >>> from pydantic import ValidationError
    >>> try:
    ...     with reported_at_spec_path():
    ...         raise SpecError("no such thing", path=("args", "x"), hint="try y")
    ... except PydanticCustomError as e:
    ...     e.type, e.context["subpath"], e.context["hint"]
    ('netspec', ['args', 'x'], 'try y')
    """
    try:
        yield
    except SpecError as e:
        raise PydanticCustomError(
            "netspec", "{message}", {"message": e.message, "hint": e.hint, "subpath": list(e.path), "key": e.key}
        ) from None


class SpecModel(BaseModel):
    """Base for all spec sections: ``extra="forbid"`` plus a did-you-mean for unknown keys.

    >>> class Opt(SpecModel):
    ...     lr: float = 0.1
    >>> Opt.model_validate({"lr": 0.5}).lr
    0.5
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
        for key in data:
            if key not in known:
                hint = (
                    did_you_mean(str(key), sorted(known))
                    or f"allowed keys: {', '.join(sorted(k for k in known if not k.startswith('$')))}"
                )
                raise PydanticCustomError("unknown_key", "unknown key `{key}`; {hint}", {"key": str(key), "hint": hint})
        return data


class PinnedSpec(SpecModel):
    """The one shape an input may have: an imported forward was specialised at it."""

    shape: list[int] = Field(description="The per-sample shape the forward was traced and specialised at.")
    by: str = Field(description="What specialised it: the module path, the construct and its source line.")


def check_pinned(shape: list[int | str], pinned: PinnedSpec | None) -> None:
    """An input's shape must be the one it is pinned at (``netspec import`` writes the pin).

    >>> check_pinned([3, 8], PinnedSpec(shape=[3, 8], by="net.py:7"))
    >>> check_pinned([3, 9], PinnedSpec(shape=[3, 8], by="net.py:7"))
    Traceback (most recent call last):
    pydantic_core._pydantic_core.PydanticCustomError: shape 3x9 is not the size this spec was imported at: it is pinned at 3x8 (by net.py:7)
    """
    if pinned is None or shape == pinned.shape:
        return
    shown = "x".join(map(str, shape)) or "a scalar"
    raise PydanticCustomError(
        "netspec",
        "shape {shown} is not the size this spec was imported at: it is pinned at {pinned} (by {by})",
        {
            "shown": shown,
            "pinned": "x".join(map(str, pinned.shape)),
            "by": pinned.by,
            "subpath": ["shape"],
            "hint": f"import the model again with --input-size {shown}",
        },
    )
