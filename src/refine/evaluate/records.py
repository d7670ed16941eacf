"""Evaluation records: one JSON per cell, format fixed in docs/design.md ("Evaluation records")."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from refine.atomic import atomic_path

SCHEMA = 1
REQUIRED = ("experiment", "arch", "model", "stage", "method", "seed", "family", "task", "length", "length_label",
            "ttt", "metric", "score", "n", "examples")  # fmt: skip
FAMILIES = ("niah", "qa", "longbench")
TTT_MODES = ("none", "sft", "refine", "refine_cosine")  # refine_cosine: Table E.2

_MODEL_NAME = re.compile(
    r"^(?:(?P<base>base)|mid-(?P<mid>[a-z0-9_]+)-s(?P<ms>\d+)"
    r"|post-.+-(?P<post>sft|nested_sft|nested_refine)-s(?P<ps>\d+))$"
)


def config_hash(config: Any) -> str:
    """sha1 of the canonical JSON (sorted keys) of a configuration."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def record_path(
    results: str | Path,
    *,
    experiment: str,
    arch: str,
    model: str,
    family: str,
    task: str,
    length: int,
    ttt: str,
) -> Path:
    """`{results}/{experiment}/evals/{arch}/{model}/{family}/{task}_{length}_ttt-{ttt}.json` (docs/design.md)."""
    return Path(results) / experiment / "evals" / arch / model / family / f"{task}_{length}_ttt-{ttt}.json"


def parse_model_name(name: str) -> tuple[str, str, int | None]:
    """(stage, method, seed) of a design.md model name: `base`, `mid-{method}-s{seed}`,
    `post-{task}-{length}-{method}-s{seed}`; `base` gives ("base", "none", None)."""
    m = _MODEL_NAME.match(name)
    if m is None:
        raise ValueError(
            f"model name {name!r} is not base, mid-{{method}}-s{{seed}} or "
            "post-{task}-{length}-{method}-s{seed}"
        )
    if m["base"]:
        return "base", "none", None
    if m["mid"]:
        return "mid", m["mid"], int(m["ms"])
    return "post", m["post"], int(m["ps"])


def write_record(path: str | Path, *, config: Any = None, **fields: Any) -> dict[str, Any]:
    """Validate `fields`, add `schema`, `created` and `config_hash` (of `config`, unless given) and write
    the record atomically (temporary file in the same folder, then rename). Returns the record."""
    missing = [key for key in REQUIRED if key not in fields]
    if missing:
        raise ValueError(f"record {path}: missing field(s) {missing}")
    if fields["family"] not in FAMILIES:
        raise ValueError(f"record {path}: family {fields['family']!r} not in {FAMILIES}")
    if fields["ttt"] not in TTT_MODES:
        raise ValueError(f"record {path}: ttt {fields['ttt']!r} not in {TTT_MODES}")
    fields.setdefault("config_hash", config_hash(config))
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    record = {
        "schema": SCHEMA,
        **{k: v for k, v in fields.items() if k != "examples"},
        "examples": fields["examples"],
    }

    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(record, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    return record


def read_records(root: str | Path, examples: bool = False):
    """All records under `root` (recursively, `*.json` with `"schema"`) as a pandas DataFrame, one row per
    record plus a `path` column; per-example lists are kept only when `examples` is true."""
    import pandas as pd

    rows = []
    for path in sorted(Path(root).rglob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "schema" not in record:
            continue
        if not examples:
            record.pop("examples", None)
        rows.append({**record, "path": str(path)})
    if rows:
        return pd.DataFrame(rows)
    columns = ["schema", *REQUIRED, "config_hash", "created", "path"]
    return pd.DataFrame(columns=columns if examples else [c for c in columns if c != "examples"])
