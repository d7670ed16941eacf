"""Command configuration: a `--cfg` value is a JSON object or the path of a YAML/JSON file."""

from __future__ import annotations

import dataclasses
import json
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
    """Build dataclass `cls` from `data`, rejecting unknown keys with a message naming them."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        label = where or cls.__name__
        raise ValueError(f"{label}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    return cls(**data)
