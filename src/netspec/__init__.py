"""netspec: declarative PyTorch networks -- a YAML/JSON spec compiled to a torch.nn.Module.

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
"""

from __future__ import annotations

from .api import build_model, compile_spec, load_spec
from .errors import SpecError
from .layers import register_module
from .spec import BlockSpec, InputSpec, NodeSpec, Spec, node

__all__ = ["load_spec", "build_model", "compile_spec", "register_module", "SpecError",
           "Spec", "NodeSpec", "InputSpec", "BlockSpec", "node"]
__version__ = "0.1.0"
