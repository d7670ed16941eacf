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


TRAINED_STAGES = ("pretrain", "mid", "post")


def check_workflow_config(config: dict[str, Any]) -> None:
    """Cross-key rules of a schema-validated workflow config that JSON Schema cannot state; ValueError naming
    the key. Defaults come from the schema (workflow/schemas/config.schema.yaml), already filled in."""
    lengths, labels = config["lengths"], config["length_labels"]
    if len(labels) != len(lengths):
        raise ValueError(f"length_labels: {len(labels)} labels for {len(lengths)} lengths (one per length, in order)")
    for stage in TRAINED_STAGES:
        _check_batches(stage, config[stage], config[stage].get("batch_size"))
    _check_batches("ttt", config["ttt"], config["evaluation"].get("batch_size"), "evaluation.batch_size")


def _check_batches(stage: str, section: dict[str, Any], batch: int | None, batch_key: str = "") -> None:
    """micro_batch_size and refine.mini_batch_size fit in one batch (TTT: one generation batch)."""
    batch_key = batch_key or f"{stage}.batch_size"
    sizes = {"micro_batch_size": section.get("micro_batch_size"),
             "refine.mini_batch_size": section.get("refine", {}).get("mini_batch_size")}  # fmt: skip
    for key, size in sizes.items():
        if batch is not None and size is not None and size > batch:
            raise ValueError(f"{stage}.{key}: {size} sequences exceed {batch_key} ({batch})")
