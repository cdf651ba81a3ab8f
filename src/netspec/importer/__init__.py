"""``netspec import``: a Python ``nn.Module`` -> a spec that compiles back to the same module.

The front door is :func:`netspec.importer.api.import_model` (``netspec.import_model``); the
command is registered by :mod:`netspec.importer.cli`. Nothing here imports torch until a
model is imported, so ``netspec --help`` stays quick.
"""
