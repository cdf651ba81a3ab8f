"""``netspec runs``: placeholder until the runs table lands."""

from __future__ import annotations

from typing import Any


def register_runs(subparsers: Any) -> None:
    return None
