"""The specs in specs/ as test parameters, and which of them need timm (an optional extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HAS_TIMM = importlib.util.find_spec("timm") is not None


def needs_timm(path: Path) -> bool:
    """Whether a spec file names a timm model (in itself or in a base it extends)."""
    from netspec.compiler.extends import resolve_extends
    from netspec.compiler.source import load_document

    return "timm." in str(resolve_extends(load_document(path)).data)


def spec_params(paths: list[Path]) -> list:
    """``paths`` as pytest params named by stem; a spec that needs timm is skipped, with the reason,
    where timm is not installed (it is part of the `dev` extra)."""
    skip = pytest.mark.skipif(not HAS_TIMM, reason="needs timm: pip install 'netspec[timm]'")
    return [pytest.param(p, id=p.stem, marks=[skip] if needs_timm(p) else []) for p in paths]
