"""``--print-config``: the fully resolved spec as YAML, then exit.

Resolved means: ``extends`` bases merged, ``--set`` overrides applied, every key shown with its
value, defaults filled in (LightningCLI's ``--print_config``, Ludwig's ``render_config``). The
text is a spec: ``netspec validate`` reads it back to an equal spec, so it can be saved, edited
and run. Short lists and flat mappings are written on one line, as a person would.
"""

from __future__ import annotations

from typing import Any

import yaml

FLOW_WIDTH = 72  # a list or mapping of scalars this short (as text) stays on one line


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing lists of scalars and flat mappings in flow style when they are short."""


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _short(items: list[Any]) -> bool:
    return all(_scalar(v) and "\n" not in str(v) for v in items) and len(str(items)) <= FLOW_WIDTH


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=bool(data) and _short(data))


def _dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = bool(data) and _short([*data, *data.values()])
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML in key order, short lists and flat mappings on one line.

    >>> print(dump_yaml({"inputs": {"image": {"shape": [1, 32, 32], "dtype": "float32"}}}), end="")
    inputs:
      image:
        shape: [1, 32, 32]
        dtype: float32
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def resolved_config(spec: Any, source: str | None = None) -> str:
    """The text ``--print-config`` prints for a loaded spec (``source``: the file it came from).

    >>> from netspec.spec import load_spec
    >>> text = resolved_config(load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n"))
    >>> print(text.splitlines()[2]), load_spec(text=text) == load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n")
    name: m
    (None, True)
    """
    head = f"# {source}: resolved (bases merged, --set applied, defaults filled in)\n" if source else \
        "# resolved spec (--set applied, defaults filled in)\n"
    return head + dump_yaml(spec.dump(defaults=True))
