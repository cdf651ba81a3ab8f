"""Nodes at a key: a node named ``convs.0`` or ``head.fc`` whose module lives at that state_dict key.

A forward that walks two nn.ModuleLists in step (``for conv, bn in zip(self.convs, self.bns)``)
or calls a module inside its child (``self.head.fc(x)``) names modules by a path. Such a node
names the path: its module is put there, inside holders (plain ``nn.Module``s) that the names
before the last ``.`` make, so the state_dict keys are PyTorch's (``convs.0.weight``). The
holders are no nodes: a name that is also a node, a parameter or a buffer cannot hold another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

from ..errors import GraphError
from ..nodes.kinds import OpKind

# what a node at a key may be: a node that adds a module of its own
KEYED_KINDS: frozenset[OpKind] = frozenset({"layer", "block", "group", "zoo", "timm"})


def holders(name: str) -> list[str]:
    """The holders a node at a key lives in, outermost first.

    >>> holders("blocks.0.1"), holders("fc")
    (['blocks', 'blocks.0'], [])
    """
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def owner(path: str, names: Iterable[str]) -> str:
    """The node a dotted path (a tied parameter's ``convs.0.weight``) starts with: the longest
    of ``names`` that is a prefix of it, else its first part.

    >>> owner("convs.0.weight", ["convs.0", "fc"]), owner("fc.weight", ["fc"]), owner("w", [])
    ('convs.0', 'fc', 'w')
    """
    found = [n for n in names if path == n or path.startswith(f"{n}.")]
    return max(found, key=len) if found else path.split(".")[0]


def check_keys(nodes: Iterable[tuple[str, OpKind, tuple]], others: Iterable[str] = ()) -> None:
    """Refuse a node at a key that adds no module, and a holder that is a node or an input too.

    ``nodes`` are (name, kind, spec path) in spec order; ``others`` the inputs' names.

    >>> check_keys([("convs.0", "layer", ()), ("convs.1", "layer", ())])
    >>> check_keys([("convs", "layer", ("nodes", 0)), ("convs.1", "layer", ("nodes", 1))])
    Traceback (most recent call last):
    netspec.errors.GraphError: <spec>: nodes[1] (convs.1): node `convs.1` lives inside `convs`, which is a node of its own; a name before a `.` holds the nodes at its keys and is no node itself; name the node `convs_1`, or put the module in `convs`
    """
    listed = list(nodes)
    taken = {name: "a node" for name, _, _ in listed} | {name: "an input" for name in others}
    for name, kind, path in listed:
        if "." not in name:
            continue
        if kind not in KEYED_KINDS:
            what = {"op": "an op", "param": "a Parameter", "buffer": "a Buffer", "shared": "a `same_as` node"}
            raise GraphError(
                f"node `{name}` is {what.get(kind, kind)}, which holds no module of its own: a name with `.` is "
                "the key of the module a layer, block, group or model node holds",
                path=path,
                node=name,
                hint=f"name it `{name.replace('.', '_')}`",
            )
        clash = next((h for h in holders(name) if h in taken), None)
        if clash is not None:
            raise GraphError(
                f"node `{name}` lives inside `{clash}`, which is {taken[clash]} of its own; a name before a `.` "
                "holds the nodes at its keys and is no node itself",
                path=path,
                node=name,
                hint=f"name the node `{name.replace('.', '_')}`, or put the module in `{clash}`",
            )


def place(root: nn.Module, name: str, module: nn.Module) -> None:
    """Add ``module`` to ``root`` at ``name``, making the holders on the way (``convs`` for
    ``convs.0``), so its state_dict keys start with ``name``.

    >>> root = nn.Module(); place(root, "convs.0", nn.Linear(2, 2)); place(root, "convs.1", nn.ReLU())
    >>> [k for k, _ in root.named_modules()]
    ['', 'convs', 'convs.0', 'convs.1']
    """
    *path, leaf = name.split(".")
    for part in path:
        if part not in root._modules:
            root.add_module(part, nn.Module())
        held = root._modules[part]
        assert held is not None  # check_keys: a holder is no node
        root = held
    root.add_module(leaf, module)


def inner_name(source: str) -> str:
    """The name a value a group reads (``from: [x, convs.0]``) has inside it: a Python name, as
    the group's forward takes it (``0``, ``block1-0`` and ``convs.0`` are none).

    >>> inner_name("x"), inner_name("0"), inner_name("convs.0")
    ('x', 'x_0', 'x_convs_0')
    """
    return source if source.isidentifier() else "x_" + re.sub(r"[^0-9A-Za-z_]", "_", source)
