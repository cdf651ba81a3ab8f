"""Safe expressions over parameters and inferred shapes: ``$out``, ``${in // 2}``.

Expressions are parsed with :mod:`ast` and interpreted here, node by node, over a small
whitelist (arithmetic, comparisons, ``and``/``or``/``not``, ``a if c else b``, indexing,
attribute access on shapes, and a few pure functions). Nothing is ever passed to
``eval``/``exec``, and no attribute outside :class:`ShapeInfo` can be reached.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError, did_you_mean

MAX_EXPR_CHARS = 500
MAX_INT_BITS = 64  # refuse 10**10**10 style blow-ups
MAX_SEQ_LEN = 10_000  # refuse 'a' * 10**9 style blow-ups


@dataclass(frozen=True)
class ShapeInfo:
    """The inferred shape of a tensor, as expressions see it (batch dim excluded).

    >>> s = ShapeInfo((64, 70, 70))
    >>> s.channels, s.features, s.dims, s.shape[1]
    (64, 70, 3, 70)
    """

    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        """Size of dim 1 of the batched tensor (channels for images)."""
        return self.shape[0]

    @property
    def features(self) -> int:
        """Size of the last dim (features for Linear)."""
        return self.shape[-1]

    @property
    def dims(self) -> int:
        """Number of per-sample dims."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Elements per sample."""
        return math.prod(self.shape)


_SHAPE_ATTRS = {"shape", "channels", "features", "dims", "numel"}

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "round": round,
    "abs": abs,
    "len": len,
    "bool": bool,
}
_CONSTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class ExprError(SpecError):
    """An expression could not be parsed or evaluated."""


def _check_number(value: Any, text: str) -> Any:
    """``value`` if it is a number a spec may hold; NaN never is (``inf - inf``, ``float('nan')``).

    >>> _check_number(float("inf") - float("inf"), "a - b")
    Traceback (most recent call last):
    netspec.compiler.expr.ExprError: <spec>: `a - b` gives NaN (not a number); write an expression that gives a number
    """
    if isinstance(value, float) and math.isnan(value):
        raise ExprError(f"`{text}` gives NaN (not a number)", hint="write an expression that gives a number")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ExprError(f"`{text}` gives a number too large to be a size")
    if isinstance(value, complex):
        raise ExprError(f"`{text}` gives a complex number")
    return value


class _Evaluator:
    def __init__(self, env: Mapping[str, Any], text: str):
        self.env = env
        self.text = text

    def fail(self, message: str, hint: str | None = None) -> ExprError:
        return ExprError(f"in `{self.text}`: {message}", hint=hint)

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise self.fail(f"`{type(node).__name__}` is not allowed in expressions")
        try:
            return _check_number(method(node), self.text)
        except SpecError:
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as e:  # `'a' < 1`, `int(inf)`, `-x`
            raise self.fail(str(e) or type(e).__name__) from None

    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise self.fail("only numbers, strings and booleans are allowed")
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.env:
            return self.env[node.id]
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        raise self.fail(
            f"unknown name `{node.id}`",
            did_you_mean(node.id, list(self.env)) or f"known names: {', '.join(sorted(map(str, self.env))) or 'none'}",
        )

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(f"operator `{type(node.op).__name__}` is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        if op is operator.pow and isinstance(right, (int, float)) and abs(right) > 64:
            raise self.fail("exponent too large")
        if op is operator.mul and any(isinstance(a, (str, list, tuple)) for a in (left, right)):
            n = right if isinstance(left, (str, list, tuple)) else left
            seq = left if isinstance(left, (str, list, tuple)) else right
            if isinstance(n, int) and len(seq) * n > MAX_SEQ_LEN:
                raise self.fail(f"repetition longer than {MAX_SEQ_LEN} items")
        try:
            return op(left, right)
        except ZeroDivisionError:
            raise self.fail("division by zero") from None
        except TypeError as e:
            raise self.fail(str(e)) from None

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise self.fail("operator not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = self.eval(v)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = self.eval(v)
            if result:
                return result
        return result

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        for op, comp in zip(node.ops, node.comparators):
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise self.fail("comparison not allowed")
            right = self.eval(comp)
            if not fn(left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        if isinstance(base, ShapeInfo) and node.attr in _SHAPE_ATTRS:
            return getattr(base, node.attr)
        raise self.fail(f"no attribute `{node.attr}` here", "shapes have .channels, .features, .shape, .dims, .numel")

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        index = self.eval(node.slice)
        if isinstance(base, ShapeInfo):
            base = base.shape
        try:
            return base[index]
        except (IndexError, KeyError, TypeError) as e:
            raise self.fail(f"bad index: {e}") from None

    def _Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.eval(e) for e in node.elts)

    def _List(self, node: ast.List) -> Any:
        return [self.eval(e) for e in node.elts]

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise self.fail("only min, max, int, float, round, abs, len, bool may be called")
        args = [self.eval(a) for a in node.args]
        try:
            return _FUNCS[node.func.id](*args)
        except (TypeError, ValueError) as e:
            raise self.fail(str(e)) from None


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression (without the ``${...}``) over ``env``.

    >>> evaluate("x.channels // 2 if bilinear else out", {"x": ShapeInfo((128, 8, 8)), "bilinear": True, "out": 64})
    64
    """
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        with warnings.catch_warnings():  # `1if x else 2`: Python's SyntaxWarning is not ours to print
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"cannot parse expression `{text}`: {e.msg}") from None
    return _Evaluator(env, text).eval(tree)


_WHOLE_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WHOLE_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
_INLINE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def is_expression(value: Any) -> bool:
    """True for strings that contain ``$name`` or ``${...}``."""
    return isinstance(value, str) and "$" in value


def substitute(value: Any, env: Mapping[str, Any], path: tuple[str | int, ...] = ()) -> Any:
    """Resolve expressions anywhere inside ``value`` (dicts and lists are walked).

    A string that is exactly ``$name`` or ``${expr}`` becomes the value itself (an int
    stays an int); expressions inside longer strings are formatted into the string.
    ``$$`` is a literal dollar. ``path`` is the spec path of ``value``: an error in an
    expression is reported at the exact key or list item that holds it.

    >>> substitute({"out": "${c * 2}", "tag": "w$c"}, {"c": 32})
    {'out': 64, 'tag': 'w32'}
    """
    if isinstance(value, dict):
        return {k: substitute(v, env, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, path + (i,)) for i, v in enumerate(value)]
    if not is_expression(value):
        return value
    try:
        return _substitute_one(value, env)
    except ExprError as e:
        if not e.path:
            e.path = tuple(path)
        raise


def _substitute_one(value: str, env: Mapping[str, Any]) -> Any:
    m = _WHOLE_NAME.match(value)
    if m:
        return evaluate(m.group(1), env)
    m = _WHOLE_EXPR.match(value)
    if m and "${" not in m.group(1):
        return evaluate(m.group(1), env)
    if "$$" in value:
        return value.replace("$$", "$")

    def repl(match: re.Match[str]) -> str:
        return str(evaluate(match.group(1) or match.group(2), env))

    return _INLINE.sub(repl, value)
