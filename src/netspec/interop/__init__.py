"""Leaving netspec: trained models run on files (``netspec predict``, :func:`netspec.load_run`) and
written out as ONNX, torch.export programs, TorchScript or a standalone Python file
(``netspec export``).

==============  =============================================================================
module          what it holds
==============  =============================================================================
``run.py``      :func:`load_run`: a run directory -> the model with its best weights
``predict.py``  inputs (images, folders, CSV rows, tensor files) -> predictions, CSV rows, masks
``scores.py``   what an output holds (logits or probabilities; classes, masks or values)
``export.py``   ``--format onnx | export | torchscript``, each checked against PyTorch's outputs
``eject.py``    ``--format python``: the compiled model -> a plain ``nn.Module`` source file
``pysource.py`` the pieces of that file: constructor calls, literals, forward code, helpers
``cli.py``      the ``predict`` and ``export`` commands
==============  =============================================================================

Importing this package costs nothing: each module imports torch itself.
"""

from __future__ import annotations

from ..errors import SpecError

__all__ = ["ExportError"]


class ExportError(SpecError):
    """A model cannot be exported in the asked format, or its export does not reproduce it.

    >>> str(ExportError("onnx needs the `onnx` package", hint="pip install 'netspec[onnx]'"))
    "<spec>: onnx needs the `onnx` package; pip install 'netspec[onnx]'"
    """
