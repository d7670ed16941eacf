"""Table I/O, the one reader and writer of parquet/jsonl tables: checked reads, atomic writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from refine.atomic import atomic_path


def write_table(rows: pd.DataFrame | Sequence[dict], path: str | Path) -> Path:
    """Write rows atomically as parquet or jsonl (by suffix); lists stay lists."""
    path = Path(path)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif path.suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(_plain(r), ensure_ascii=False) + "\n" for r in frame.to_dict(orient="records"))
        else:
            raise ValueError(f"{path}: unsupported table format (use .parquet or .jsonl)")
    return path


def read_table(path: str | Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a parquet/jsonl table; raise naming the file and the missing column, or an empty file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:  # json.loads keeps strings as strings (no dtype guessing)
            frame = pd.DataFrame([json.loads(line) for line in f if line.strip()])
    else:
        raise ValueError(f"{path}: unsupported table format (use .parquet or .jsonl)")
    if not isinstance(frame.index, pd.RangeIndex):  # a stored pandas index (LongBench's original row ids)
        frame = frame.rename_axis("source_index").reset_index()
    if frame.empty:
        raise ValueError(f"{path}: file has no rows")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def read_column(path: str | Path, column: str) -> list:
    """One column of a table (`read_table`), in file order."""
    return read_table(path, [column])[column].tolist()


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a table (`read_table`) as dicts; array cells become lists."""
    return [_plain(row) for row in read_table(path).to_dict("records")]


def _plain(value):
    """numpy scalars/arrays (from parquet) -> JSON-serialisable Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
