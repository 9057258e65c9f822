"""A recipe's command line: its config dataclass as flags, ``--config FILE`` and ``--print-config``.

``--config FILE`` reads a saved ``config.json`` (every run writes one into its run folder)
or a YAML file of the same shape; its values become the defaults, and the flags given
beside it override them. ``--print-config`` prints the resolved config as JSON and exits,
so ``--print-config > my.json`` starts a config file. Under ``accelerate launch`` every
process parses the flags; only the first prints ``--help`` or an error.

Example:
    >>> cfg = parse_config(Config)                       # in a recipe's __main__ block
    $ python recipes/train.py --config work_dirs/digits/20261128_201502/config.json --lr 1e-3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

import tyro

T = TypeVar("T")

CONFIG_HELP = (
    "--config FILE: take the defaults from a saved config.json (or a YAML file of the same "
    "shape); flags given beside it override them. --print-config: print the resolved config "
    "as JSON and exit."
)


def parse_config(cls: type[T], args: list[str] | None = None, description: str | None = None) -> T:
    """Parse `cls` (a config dataclass) from the command line, with flat flag names.

    Args:
        cls: the recipe's config dataclass; nested dataclasses become groups in ``--help``.
        args: the arguments (default: ``sys.argv[1:]``).
        description: the ``--help`` text above the flags (default: `cls`'s docstring).

    Returns:
        The config, checked by each dataclass's ``__post_init__``.
    """
    args = list(sys.argv[1:] if args is None else args)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--print-config", action="store_true")
    known, rest = pre.parse_known_args(args)
    first = int(os.environ.get("RANK", 0)) == 0
    try:
        default = load_config_file(cls, known.config) if known.config else None
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f"error: --config {known.config}: {err}") from None
    text = f"{description or (cls.__doc__ or '').strip()}\n\n{CONFIG_HELP}"
    # tyro prints __post_init__ errors even with console_outputs=False: the other
    # processes' stderr goes nowhere.
    with contextlib.redirect_stderr(sys.stderr if first else io.StringIO()):
        cfg = tyro.cli(
            cls,
            args=rest,
            default=default,
            description=text,
            config=(tyro.conf.OmitArgPrefixes,),
            console_outputs=first,
        )
    if known.print_config:
        if first:
            print(json.dumps(dataclasses.asdict(cfg), indent=2))
        raise SystemExit(0)
    return cfg


def load_config_file(cls: type[T], path: str | Path) -> T:
    """An instance of `cls` from a JSON (``.json``) or YAML (``.yaml``/``.yml``) file.

    Keys the file lacks keep `cls`'s defaults; a key `cls` does not have is an error.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError("reading YAML needs PyYAML: pip install pyyaml") from None
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON ({err})") from None
    return from_dict(cls, data or {})


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build the dataclass `cls` from a (nested) dict such as ``dataclasses.asdict`` gives."""
    if not isinstance(data, dict):
        raise TypeError(f"{where or 'the config'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(where + k for k in unknown)}; accepted: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value, f"{where}{name}.")
        elif isinstance(value, list) and typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[name] = value
    return cls(**values)
