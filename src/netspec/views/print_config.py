"""``--print-config``: the fully resolved spec as YAML, then exit.

Resolved means: ``extends`` bases merged, ``--set`` overrides applied, every key shown with its
value, defaults filled in (LightningCLI's ``--print_config``, Ludwig's ``render_config``). The
text is a spec: ``netspec validate`` reads it back to an equal spec, so it can be saved, edited
and run. Short lists and flat mappings are written on one line, as a person would. Like a spec
file, the text is at most :data:`MAX_PRINTED` characters: counted while walking the data, before
any text is built, since aliases (or bases) can repeat one long string many times.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..compiler.source import MAX_BYTES, Path_
from ..errors import ResourceError

FLOW_WIDTH = 72  # a list or mapping of scalars this short (as text) stays on one line
MAX_PRINTED = MAX_BYTES  # the printed spec must read back: no longer than a spec file may be


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

    >>> from netspec.compiler.spec import load_spec
    >>> text = resolved_config(load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n"))
    >>> print(text.splitlines()[2]), load_spec(text=text) == load_spec(text="name: m\\ninputs: {x: [3]}\\nnodes: [ReLU]\\n")
    name: m
    (None, True)
    """
    head = (
        f"# {source}: resolved (bases merged, --set applied, defaults filled in)\n"
        if source
        else "# resolved spec (--set applied, defaults filled in)\n"
    )
    data = spec.dump(defaults=True)
    over = _over_limit(data)  # before the text is built: aliases can repeat one long string 10^5 times
    if over is not None:
        raise _too_long(spec, over)
    text = head + dump_yaml(data) + _from_weights(spec)
    if len(text) > MAX_PRINTED:  # quoting and escapes the estimate left out
        raise _too_long(spec, ())
    return text


def _from_weights(spec: Any) -> str:
    """Comment lines naming the transforms the model's weights give a data section that names
    none (a comment: the printed text must read back to the same spec, which names none).

    >>> from netspec.compiler.spec import load_spec
    >>> print(_from_weights(load_spec({"name": "m", "inputs": {"x": [3, 8, 8]},
    ...                                "nodes": [{"net": {"resnet18": {"weights": "DEFAULT"}}}]})), end="")
    # transforms from the weights of node `net` (no data.transforms or data.eval_transforms given);
    # used for training, evaluation and predict:
    #   - {WeightsTransforms: ResNet18_Weights.IMAGENET1K_V1}   # Resize(256, bilinear, antialias=True), CenterCrop(224), to float in [0, 1], Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    """
    from ..data.preprocessing import NAME, default_items, resolve, weights_preprocessing

    found = weights_preprocessing(spec)
    if default_items(spec) is not None and found is not None:
        node, name = found
        return (
            f"# transforms from the weights of node `{node}` (no data.transforms or data.eval_transforms given);\n"
            "# used for training, evaluation and predict:\n"
            f"#   - {{{NAME}: {name}}}   # {resolve(name).text}\n"
        )
    data = getattr(spec, "data", None)
    named = [
        item[NAME]
        for item in [*(getattr(data, "transforms", None) or []), *(getattr(data, "eval_transforms", None) or [])]
        if isinstance(item, dict) and NAME in item
    ]
    return "".join(f"# {NAME}: {name} (from the weights): {resolve(name).text}\n" for name in dict.fromkeys(named))


def _over_limit(data: Any) -> Path_ | None:
    """Where the printed text would pass MAX_PRINTED characters (None: it stays under), counted
    while walking: each scalar, key and indent as written, strings as long as they are.

    >>> _over_limit({"params": {"a": "x" * 10, "b": "y"}}) is None
    True
    >>> _over_limit({"params": {f"p{i}": "x" * 100_000 for i in range(100)}})
    ('params', 'p52')
    """
    total = 0
    stack: list[tuple[Path_, Any]] = [((), data)]
    while stack:  # depth first, in printed order
        path, value = stack.pop()
        total += 2 * len(path) + 4 + (len(str(path[-1])) if path else 0)  # indent, "- " or ": ", newline
        if isinstance(value, dict):
            stack.extend(reversed([((*path, k), v) for k, v in value.items()]))
        elif isinstance(value, (list, tuple)):
            stack.extend(reversed([((*path, i), v) for i, v in enumerate(value)]))
        else:
            total += len(str(value))
        if total > MAX_PRINTED:
            return path
    return None


def _too_long(spec: Any, path: Path_) -> ResourceError:
    from ..compiler.spec import document_of

    err = ResourceError(
        f"--print-config: the resolved spec is over {MAX_PRINTED:,} characters, the limit for a spec file; refused",
        path=path,
        hint="is a long value repeated through aliases or bases?",
    )
    return err.with_location(document_of(spec).locate(path))
