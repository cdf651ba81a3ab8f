"""timm's norm-and-activation layers -> the torch.nn norm layer they compute, then their children.

``timm.layers.BatchNormAct2d`` is an ``nn.BatchNorm2d`` whose forward runs the batch norm (with
its own tensors: the keys ``bn.weight``, ``bn.running_mean``, ...) and then its weightless
children ``drop`` and ``act``. A spec writes that as a ``BatchNorm2d`` node under the module's
name (so the keys stay) followed by the dropout and activation nodes. Only the classes whose
forward is known to be exactly that are read so (``trace._BASES``); any other subclass of a torch.nn
layer is traced like any custom module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import fx, nn

from .errors import ImportFailed, class_path
from .ir import Ref, SNode, has_state
from .kinds import is_layer, norm_base
from .trace import Traced

if TYPE_CHECKING:
    from .convert import Converter


# timm activation classes -> the torch.nn layer computing the same (their forwards call these functions)
_TIMM_ACTS: dict[str, Callable[[], nn.Module]] = {
    "timm.layers.activations.GELU": nn.GELU,  # F.gelu(x)
    "timm.layers.activations.GELUTanh": lambda: nn.GELU(approximate="tanh"),  # F.gelu(x, approximate="tanh")
    "timm.layers.activations.Sigmoid": nn.Sigmoid,  # x.sigmoid()
    "timm.layers.activations.Tanh": nn.Tanh,  # x.tanh()
}


def plain_copy(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """The same settings and tensors as a plain ``cls``, without the children (read, never run)."""
    plain = cls.__new__(cls)
    plain.__dict__.update(module.__dict__)
    plain.__dict__["_modules"] = {}
    return plain


def norm_act_nodes(c: Converter, n: fx.Node, name: str, sub: Traced, args: tuple, kwargs: dict) -> list[SNode]:
    """The norm layer node (named ``name``: its keys), then a node per child that is not the identity."""
    base = norm_base(sub.module)
    assert base is not None
    nodes = [c._layer(name, Traced(sub.path, plain_copy(sub.module, base), "layer"), args, kwargs)]
    for child in ("drop", "act"):
        module: Any = getattr(sub.module, child, None)
        if module is None or type(module) is nn.Identity:
            continue
        if class_path(module) in _TIMM_ACTS:
            module = _TIMM_ACTS[class_path(module)]()
        if not is_layer(module) or has_state(module):
            raise ImportFailed(
                f"`{child}` of this {type(sub.module).__name__} is {class_path(module)}, not a torch.nn layer "
                "without weights: a spec writes the norm and then its activation as torch.nn layers",
                where=sub.path,
            )
        previous = Ref(str(nodes[-1].name), c.values(n))
        traced = Traced(f"{sub.path}.{child}", module, "layer")
        nodes.append(c._layer(c.namer.fresh(f"{name}_{child}"), traced, (previous,), {}))
    return nodes
