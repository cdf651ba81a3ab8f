"""Feature standardisation: the ``Standardize`` transform's statistics, fitted on the training
split only, and the one operation that applies them wherever inputs are prepared.

A spec asks for it as the last transform of a list::

    transforms: [Standardize]                         # z-score: (x - mean) / std, per feature
    transforms: [{Standardize: {method: minmax}}]     # (x - min) / (max - min): [0, 1] on train

The statistics are computed once per model input (every floating-point input, or those named
by ``inputs:``) over the samples of the training split, per feature (each element of a sample:
a column of a table), in float64 as scikit-learn's ``StandardScaler`` and ``MinMaxScaler`` do
(population std); a feature constant on the training split gets scale 1, so it becomes 0. They
travel as :data:`Statistics` (input name -> method, shift, scale): in ``Loaders.info``, in the
checkpoint, into ``netspec eval`` (never fitted again on evaluation data), and as a
:class:`Standardizer` layer in front of the model for ``netspec predict``, the exported formats
and the ejected Python file (:func:`standardized`), which compute exactly what the data
pipeline computes: ``(x - shift) / scale`` in the input's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx, nn

from ..errors import DataError

__all__ = [
    "METHODS",
    "Statistics",
    "Standardizer",
    "fit",
    "standardized",
    "check_statistics",
    "standardizes",
    "input_shapes",
]

#: method name -> what it computes per feature on the training split
METHODS = {"zscore": "mean and standard deviation", "minmax": "minimum and range"}

#: model input name -> {"method": str, "shift": Tensor, "scale": Tensor} (per-sample shape each)
Statistics = dict[str, dict[str, Any]]


def fit(x: Tensor, method: str) -> tuple[Tensor, Tensor]:
    """Per-feature ``(shift, scale)`` of samples ``x`` ``(N, ...)``, in ``x``'s dtype.

    >>> shift, scale = fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]), "zscore")
    >>> shift.tolist(), scale.tolist()  # the constant feature keeps scale 1
    ([2.0, 5.0], [1.0, 1.0])
    >>> [t.tolist() for t in fit(torch.tensor([[1.0], [3.0], [2.0]]), "minmax")]
    [[1.0], [2.0]]
    """
    x64 = x.double()  # (N, ...) float64: the sums of many float32 values stay exact enough
    low, high = x64.amin(0), x64.amax(0)  # (...) per feature
    if method == "minmax":
        shift, scale = low, high - low
    else:
        shift = x64.mean(0)
        scale = ((x64 - shift) ** 2).mean(0).sqrt()  # population std (ddof 0), as StandardScaler
    scale = torch.where(high == low, torch.ones_like(scale), scale)  # constant on train: no spread to divide by
    return shift.to(x.dtype), scale.to(x.dtype)


class Standardizer(nn.Module):
    """``(x - shift) / scale`` with the statistics as buffers that are not saved in the
    state_dict (the model's checkpoint keys stay as they are; the statistics have their own
    checkpoint entry).

    >>> Standardizer(torch.tensor([1.0]), torch.tensor([2.0]))(torch.tensor([[5.0]])).tolist()
    [[2.0]]
    """

    def __init__(self, shift: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.shift: Tensor
        self.scale: Tensor
        self.register_buffer("shift", shift.clone(), persistent=False)
        self.register_buffer("scale", scale.clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale  # (B, ...) broadcast over the batch


def standardized(module: fx.GraphModule, stats: Statistics) -> fx.GraphModule:
    """A copy of a compiled model whose inputs go through their :class:`Standardizer` first:
    same forward signature, same parameters (shared) and state_dict keys, raw features in.

    >>> from netspec.api import build_model
    >>> m = build_model({"name": "m", "inputs": {"x": [1]}, "nodes": [{"Identity": {}}]})
    >>> s = standardized(m, {"x": {"method": "zscore", "shift": torch.tensor([1.0]), "scale": torch.tensor([4.0])}})
    >>> s(torch.tensor([[9.0]])).tolist(), list(s.state_dict()) == list(m.state_dict())
    ([[2.0]], True)
    """
    graph = fx.Graph()
    graph.output(graph.graph_copy(module.graph, {}))  # every node but the output, then the same output
    root = nn.Module()  # every child, parameter and buffer: the same state_dict keys
    for name, child in module.named_children():
        root.add_module(name, child)
    for name, param in module.named_parameters(recurse=False):
        root.register_parameter(name, param)
    for name, buf in module.named_buffers(recurse=False):
        root.register_buffer(name, buf)
    for node in graph.nodes:  # a constant the forward reads that is no parameter or buffer
        if node.op == "get_attr" and "." not in str(node.target) and not hasattr(root, str(node.target)):
            setattr(root, str(node.target), getattr(module, str(node.target)))
    for node in list(graph.nodes):
        if node.op != "placeholder" or node.target not in stats:
            continue
        attr = _free_name(root, f"standardize_{node.target}")
        root.add_module(attr, Standardizer(stats[node.target]["shift"], stats[node.target]["scale"]))
        with graph.inserting_after(node):
            new = graph.call_module(attr, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda user, new=new: user is not new)  # not its own input
    out = fx.GraphModule(root, graph, class_name=type(module).__name__)
    out.train(module.training)
    if hasattr(module, "netspec_graph"):  # the typed graph netspec's tools read (output shapes)
        out.netspec_graph = module.netspec_graph
    return out


def _free_name(module: nn.Module, name: str) -> str:
    taken = {n for n, _ in module.named_children()} | set(vars(module))
    candidate, n = name, 2
    while candidate in taken or hasattr(module, candidate):
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def standardizes(data: Any) -> bool:
    """Whether a ``data:`` section ends a transform list with ``Standardize``.

    >>> from netspec.data.spec import DataSpec
    >>> standardizes(DataSpec.model_validate({"train": {"source": "random"}, "transforms": [{"Standardize": {}}]}))
    True
    """
    lists = [getattr(data, key, None) or [] for key in ("transforms", "eval_transforms")]
    return any(items and _name(items[-1]) == "Standardize" for items in lists)


def _name(item: Any) -> Any:
    return next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item


def check_statistics(stats: Any, inputs: dict[str, tuple[int, ...]] | None, where: str) -> Statistics:
    """Statistics read from a file, checked against the model's inputs (per-sample shapes):
    a malformed entry is one line (a :class:`DataError` naming ``where``), never a traceback.
    ``inputs`` None: a model without a typed graph, whose input shapes are not known.

    >>> check_statistics({"x": {"method": "zscore", "shift": torch.zeros(2), "scale": torch.ones(3)}}, {"x": (2,)}, "c.pt")
    Traceback (most recent call last):
    netspec.errors.DataError: <spec>: c.pt: its Standardize statistics of input `x` have shapes (2,) and (3,); the input takes (2,)
    """
    if not isinstance(stats, dict):
        raise DataError(f"{where}: its Standardize statistics are a {type(stats).__name__}, not a mapping")
    for name, entry in stats.items():
        if inputs is not None and name not in inputs:
            raise DataError(f"{where}: it holds Standardize statistics of `{name}`, which is no input of this model")
        if not isinstance(entry, dict) or entry.get("method") not in METHODS:
            raise DataError(f"{where}: its Standardize statistics of input `{name}` are malformed")
        shift, scale = entry.get("shift"), entry.get("scale")
        if not isinstance(shift, Tensor) or not isinstance(scale, Tensor):
            raise DataError(f"{where}: its Standardize statistics of input `{name}` are not tensors")
        want = inputs[name] if inputs is not None else tuple(shift.shape)
        if tuple(shift.shape) != want or tuple(scale.shape) != want:
            raise DataError(
                f"{where}: its Standardize statistics of input `{name}` have shapes {tuple(shift.shape)} and "
                f"{tuple(scale.shape)}; the input takes {want}"
            )
        if not (bool(torch.isfinite(shift).all()) and bool(torch.isfinite(scale).all()) and bool((scale > 0).all())):
            raise DataError(f"{where}: its Standardize statistics of input `{name}` are not finite positive scales")
    return stats


def input_shapes(model: nn.Module) -> dict[str, tuple[int, ...]] | None:
    """Per-sample shapes of a compiled model's inputs, from its typed graph (None for another module).

    >>> from netspec.api import build_model
    >>> input_shapes(build_model({"name": "m", "inputs": {"x": [3]}, "nodes": [{"Identity": {}}]}))
    {'x': (3,)}
    """
    graph = getattr(model, "netspec_graph", None)
    return None if graph is None else {n: tuple(v.shape[1:]) for n, v in graph.inputs.items()}
