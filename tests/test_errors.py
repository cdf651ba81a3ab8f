"""A SpecError is one line whatever its text holds."""

from __future__ import annotations

import pytest

from netspec.errors import SpecError, WriteFailed

LINE_ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("end", LINE_ENDS, ids=[repr(e) for e in LINE_ENDS])
@pytest.mark.parametrize("cls", [SpecError, WriteFailed])
def test_a_line_end_in_any_part_stays_on_one_line(cls: type[SpecError], end: str) -> None:
    text = str(cls(f"unknown layer `a{end}b`", path=("nodes", 0), node=f"n{end}1", hint=f"did you{end}mean"))
    assert len(text.splitlines()) == 1, repr(text)
    assert "a b" in text and "did you mean" in text
