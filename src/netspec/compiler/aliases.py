"""A module held under a second name (``aliases: {cpe1: blocks.0.cpe}``), as a PyTorch model that
passes one module to its blocks (``self.cpe1 = ConvPosEnc(...)``; ``Block(shared_cpe=self.cpe1)``)
holds it: the state_dict has both keys, their tensors the same storage, and forward calls it
under the name its nodes give it. The spec's key (``Spec.aliases``) and the step that registers the
names on the built module live here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ..errors import BuildError, did_you_mean
from .spec_base import SpecModel

if TYPE_CHECKING:  # the spec's models load without torch (`netspec schema` imports none)
    from torch import nn


class Aliases(SpecModel):
    """The spec's `aliases` key (a base of ``Spec``)."""

    aliases: dict[str, str] | None = Field(
        None,
        description=(
            "Modules held under another name too, as `self.cpe1` and each block's `cpe` are one module: "
            "{cpe1: blocks.0.cpe} (the new name: the module's key). The state_dict holds both keys, as torch's does."
        ),
    )


def register_aliases(root: nn.Module, aliases: dict[str, str]) -> None:
    """Register each module of ``aliases`` (new name -> the key of a module ``root`` holds)
    under its new name too; a BuildError at ``aliases.NAME`` when the key holds no module or the
    name is taken or its holder missing.

    >>> from torch import nn
    >>> root = nn.Module(); root.blocks = nn.Sequential(nn.Linear(2, 2))
    >>> register_aliases(root, {"pos": "blocks.0"})
    >>> root.pos is root.blocks[0], list(root.state_dict())
    (True, ['blocks.0.weight', 'blocks.0.bias', 'pos.weight', 'pos.bias'])
    """
    for name, key in aliases.items():
        path = ("aliases", name)
        modules = dict(root.named_modules(remove_duplicate=False))
        if key not in modules or key == "":
            raise BuildError(
                f"`{name}` is to be the module at `{key}`, which holds no module",
                path=path,
                hint=did_you_mean(key, [k for k in modules if k]) or "give the key of a layer, block or group node",
            )
        holder, _, leaf = name.rpartition(".")
        if holder not in modules or not leaf.isidentifier() or hasattr(modules[holder], leaf):
            what = f"`{holder}` holds no module" if holder not in modules else f"`{name}` is taken or no identifier"
            raise BuildError(
                f"{what}; an alias is a new name in a module the spec builds",
                path=path,
                hint="name it after the module's own key (`cpe1`, `blocks.0.pos`)",
            )
        setattr(modules[holder], leaf, modules[key])
