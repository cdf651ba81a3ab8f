"""How a caller uses a traced module's body: a node of its block, given the tensors the body
reads (an argument its forward never reads is no input), or, for a stateless body of one node,
that node written inline; a body that returns its input is no node at all.
"""

from __future__ import annotations

import re

from .call import Result
from .errors import class_path
from .ir import Body, Ref, SNode
from .trace import Traced


def drop_unread(body: Body, refs: list[Ref]) -> tuple[Body, list[Ref]]:
    """A module's tensor arguments after the first that its forward never reads (GCViT's local
    attention is given the global query too) are no inputs of its block, nor of the node using it."""
    text = repr([(n.inputs, n.args, n.nodes, n.when, n.else_) for n in body.nodes])  # the names nodes read, nested too
    kept = [
        k
        for k, i in enumerate(body.inputs)
        if k == 0 or i in body.outputs or re.search(rf"(?<![\w.]){re.escape(i)}(?![\w])", text)
    ]
    if len(kept) == len(body.inputs) or len(refs) != len(body.inputs):
        return body, refs
    body.inputs = [body.inputs[k] for k in kept]
    return body, [refs[k] for k in kept]


def calls_numbered(sub: Traced) -> bool:
    """Whether a module's forward calls children named by number (``for mod in self``)."""
    assert sub.graph is not None
    return any(n.op == "call_module" and str(n.target).isdigit() for n in sub.graph.nodes)


def block_use(name: str, body: Body, refs: list[Ref]) -> Result:
    """A node using a custom module's body; a stateless body of one node is written inline, and
    one that returns its input is no node at all."""
    if not body.stateful and len(body.outputs) == 1:
        if body.outputs[0] in body.inputs and not body.nodes:
            return refs[body.inputs.index(body.outputs[0])]
        if len(body.nodes) == 1 and body.nodes[0].use is None and body.nodes[0].nodes is None:
            node = body.nodes[0]
            rename = dict(zip(body.inputs, (r.name for r in refs)))
            inputs = (
                [rename[i] for i in node.inputs]
                if isinstance(node.inputs, list)
                else {k: rename[v] for k, v in (node.inputs or {}).items()}
            )
            return node.copy(name=name, inputs=inputs)
    return SNode(
        type(body.module).__name__, name, None, [r.name for r in refs], use=body, comment=class_path(body.module)
    )
