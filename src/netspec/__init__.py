"""netspec: declarative PyTorch networks -- a YAML/JSON spec compiled to a torch.nn.Module,
and a runner that trains it as the spec says.

>>> import netspec
>>> spec = netspec.load_spec("demo.yaml", text='''
... name: demo
... inputs: {x: [1, 28, 28]}
... nodes:
...   - Conv2d: {out_channels: 8, kernel_size: 3}
...   - ReLU: {}
...   - Flatten: {}
...   - Linear: {out_features: 10}
... ''')
>>> model = netspec.build_model(spec)
>>> sum(p.numel() for p in model.parameters())
54170

The public names are imported on first use, so ``import netspec`` (and ``netspec --help``)
costs nothing until a spec is loaded.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# A library's loggers print nothing until the program using it says where their lines go
# (`logging.basicConfig()`, a handler on "netspec"); the `netspec` command attaches its console.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> the module that defines it
_EXPORTS = {
    # spec -> module
    "load_spec": "api",
    "compile_spec": "api",
    "build_model": "api",
    "Spec": "compiler.spec",
    "NodeSpec": "compiler.spec",
    "InputSpec": "compiler.spec",
    "BlockSpec": "compiler.spec",
    "node": "compiler.spec",
    "SpecError": "errors",
    "NetspecError": "errors",
    # module -> spec
    "import_model": "importer.api",
    # module -> trained module
    "train": "training.loop",
    "evaluate": "training.evaluate",
    # trained module -> predictions, other formats
    "load_run": "interop.run",
    # extending netspec: one decorator per registry
    "register_module": "nodes.layers",
    "register_loss": "training.losses",
    "register_metric": "training.metrics",
    "register_source": "data",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for editors and type checkers; at run time __getattr__ imports on demand
    from .api import build_model as build_model
    from .api import compile_spec as compile_spec
    from .api import load_spec as load_spec
    from .compiler.spec import BlockSpec as BlockSpec
    from .compiler.spec import InputSpec as InputSpec
    from .compiler.spec import NodeSpec as NodeSpec
    from .compiler.spec import Spec as Spec
    from .compiler.spec import node as node
    from .data import register_source as register_source
    from .errors import NetspecError as NetspecError
    from .errors import SpecError as SpecError
    from .importer.api import import_model as import_model
    from .interop.run import load_run as load_run
    from .nodes.layers import register_module as register_module
    from .training.evaluate import evaluate as evaluate
    from .training.loop import train as train
    from .training.losses import register_loss as register_loss
    from .training.metrics import register_metric as register_metric


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'netspec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
