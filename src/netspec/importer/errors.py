"""The importer's one error: what could not be imported, where in the module tree, and why."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError

USER_MODULE = "netspec_import_"  # the prefix of the module names user files are imported under


class ImportFailed(SpecError):
    """A model (or a part of it) the spec language cannot express, with the reason.

    ``where`` is the module's attribute path (``layer1.0.conv1``); the front door adds the
    imported target as the location, so the line reads
    ``torchvision.models:swin_t: features.1.0.attn: ...``.

    >>> str(ImportFailed("no spec op for `torch.roll`", where="features.1.0"))
    '<spec>: features.1.0: no spec op for `torch.roll`'
    """

    def __init__(self, message: str, *, where: str = "", hint: str | None = None) -> None:
        super().__init__(message, path=tuple(where.split(".")) if where else (), hint=hint)


def class_path(obj: Any) -> str:
    """``torchvision.models.resnet.BasicBlock`` for an instance (or a class).

    >>> import torch
    >>> class_path(torch.nn.ReLU())
    'torch.nn.modules.activation.ReLU'
    """
    cls = obj if isinstance(obj, type) else type(obj)
    if cls.__module__.startswith(USER_MODULE):  # a user's file: `models/net.py:Block`
        import os
        import sys

        file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if file:
            return f"{os.path.relpath(file)}:{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"
