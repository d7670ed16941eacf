"""Command configuration: `--cfg` parsing (a JSON object or a YAML/JSON file), the one dataclass loader, the
workflow config's cross-key rules, and torch's thread count. Standard library and yaml only at import time: the
workflow loads this file on its own."""

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


TRAINED_STAGES = ("pretrain", "mid", "post")


def check_workflow_config(config: dict[str, Any]) -> None:
    """Cross-key rules of a schema-validated workflow config that JSON Schema cannot state; ValueError naming
    the key. Defaults come from the schema (workflow/schemas/config.schema.yaml), already filled in."""
    lengths, labels = config["lengths"], config["length_labels"]
    if len(labels) != len(lengths):
        raise ValueError(f"length_labels: {len(labels)} labels for {len(lengths)} lengths (one per length, in order)")
    for stage in TRAINED_STAGES:
        _check_batches(stage, config[stage], config[stage].get("batch_size"))
    corpus, mid_length = config["corpus"], config["mid"].get("max_length")
    if corpus.get("source", "synthetic") == "synthetic" and mid_length and corpus.get("length", 0) > mid_length:
        raise ValueError(
            f"corpus.length: {corpus['length']}-token documents exceed mid.max_length ({mid_length}); mid-training "
            "would cut their ends, where the synthetic documents' answers are"
        )
    pre_length = config["pretrain"]["max_length"]
    for arch in [None, *config["pretrain_corpus"].get("by_arch", {})]:
        pre_min = pretrain_corpus_section(config, arch).get("min_length")
        if pre_min and pre_min > pre_length:
            key = f"pretrain_corpus.by_arch.{arch}" if arch else "pretrain_corpus"
            raise ValueError(
                f"{key}.min_length: {pre_min} tokens exceed pretrain.max_length ({pre_length}), the length of the "
                "pretraining documents"
            )
    _check_batches("ttt", config["ttt"], config["evaluation"].get("batch_size"), "evaluation.batch_size")
    stray = sorted(set(config["ablations"].get("seeds") or []) - set(config["mid_seeds"]))
    if stray:
        raise ValueError(f"ablations.seeds: {stray} not in mid_seeds {config['mid_seeds']} (variants pair with REFINE)")


def pretrain_corpus_section(config: dict[str, Any], arch: str | None) -> dict[str, Any]:
    """The `pretrain_corpus` fields of `arch`'s base model: its `by_arch` entry over the shared ones (the shared
    ones alone for `arch` None)."""
    section = dict(config["pretrain_corpus"])
    return section | section.pop("by_arch", {}).get(arch, {})


def _check_batches(stage: str, section: dict[str, Any], batch: int | None, batch_key: str = "") -> None:
    """micro_batch_size and refine.mini_batch_size fit in one batch (TTT: one generation batch)."""
    batch_key = batch_key or f"{stage}.batch_size"
    sizes = {"micro_batch_size": section.get("micro_batch_size"),
             "refine.mini_batch_size": section.get("refine", {}).get("mini_batch_size")}  # fmt: skip
    for key, size in sizes.items():
        if batch is not None and size is not None and size > batch:
            raise ValueError(f"{stage}.{key}: {size} sequences exceed {batch_key} ({batch})")
