"""Evaluation records: one JSON per cell, format fixed in docs/design.md ("Evaluation records")."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from refine.atomic import atomic_path
from refine.experiment import FAMILIES, TTT_MODES
from refine.version import code_version

SCHEMA = 1
REQUIRED = ("experiment", "arch", "model", "stage", "method", "seed", "family", "task", "length", "length_label",
            "ttt", "metric", "score", "n", "examples")  # fmt: skip


def config_hash(config: Any) -> str:
    """sha1 of the canonical JSON (sorted keys) of a configuration."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def write_record(path: str | Path, *, config: Any = None, **fields: Any) -> dict[str, Any]:
    """Validate `fields`, add `schema`, `created`, `config_hash` (of `config`, unless given) and the code
    version (`refine.version.code_version`) and write the record atomically (temporary file in the same
    folder, then rename). Returns the record."""
    missing = [key for key in REQUIRED if key not in fields]
    if missing:
        raise ValueError(f"record {path}: missing field(s) {missing}")
    if fields["family"] not in FAMILIES:
        raise ValueError(f"record {path}: family {fields['family']!r} not in {FAMILIES}")
    if fields["ttt"] not in TTT_MODES:
        raise ValueError(f"record {path}: ttt {fields['ttt']!r} not in {TTT_MODES}")
    fields.setdefault("config_hash", config_hash(config))
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    fields = {**code_version(), **fields}
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
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a valid JSON record ({err})") from err
        if not isinstance(record, dict) or "schema" not in record:
            continue
        if not examples:
            record.pop("examples", None)
        rows.append({**record, "path": str(path)})
    if rows:
        return pd.DataFrame(rows)
    columns = ["schema", *REQUIRED, "config_hash", "created", "path"]
    return pd.DataFrame(columns=columns if examples else [c for c in columns if c != "examples"])
