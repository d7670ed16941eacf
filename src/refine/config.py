"""Command configuration: `--cfg` parsing (a JSON object or a YAML/JSON file), the one dataclass loader and
torch's thread count. Standard library and yaml only at import time."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import MISSING
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_cfg(value: str | dict | None) -> dict[str, Any]:
    """Parse a `--cfg` argument: a dict, a JSON object string, or a path to a YAML/JSON file."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    text = value.strip()
    if text.startswith("{"):
        parsed = json.loads(text)
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"--cfg: {text!r} is neither a JSON object nor an existing file")
        parsed = yaml.safe_load(path.read_text()) or {}
    if not isinstance(parsed, dict):
        raise ValueError(f"--cfg: expected a mapping, got {type(parsed).__name__}")
    return parsed


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """`cls`'s defaults with `data` applied (`merge`); fields without a default must be in `data`."""
    data = dict(data or {})
    _check_keys(cls, data, where or cls.__name__)
    required = {f.name for f in dataclasses.fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    base = cls(**{k: v for k, v in data.items() if k in required})
    return merge(base, {k: v for k, v in data.items() if k not in required}, where)


def merge(obj: T, data: dict[str, Any] | None, where: str = "") -> T:
    """A copy of dataclass `obj` with `data` applied: the one config loader. Nested dataclass fields merge
    recursively (a stage's own nested defaults are kept); lists become tuples where the field holds a tuple;
    unknown keys raise ValueError naming them and where they were found."""
    data = dict(data or {})
    where = where or type(obj).__name__
    _check_keys(type(obj), data, where)
    updates = {}
    for key, value in data.items():
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = merge(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        updates[key] = value
    return dataclasses.replace(obj, **updates)


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")


def set_threads(threads: int = 0) -> None:
    """The one place torch's intra-op threads are set: `threads`, else $REFINE_THREADS (the workflow sets it
    to the job's cores), else torch's default."""
    if n := threads or int(os.environ.get("REFINE_THREADS", "0")):
        import torch

        torch.set_num_threads(n)
