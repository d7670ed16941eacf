"""The paper's published numbers (``published.yaml``), laid out like the report's tables."""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd
import yaml


@cache
def _data() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath("published.yaml").read_text(encoding="utf-8"))


def row_key(arch: str, label: str) -> tuple[str, ...]:
    """Row index tuple ``(arch, *levels)`` from a YAML row label ``"a | b"`` (``""``: the arch alone)."""
    return (arch, *label.split(" | ")) if label else (arch,)


def published(name: str) -> pd.DataFrame:
    """Table ``name`` (``table3``, ``table4``, ``table5``, ``table6``, ``table7``, ``tableE1``, ``tableE2``,
    ``fig5``): index ``(arch, *row levels)``, columns ``(group, column)``, NaN where the paper gives no value."""
    entry = _data()[name]
    rows = {row_key(arch, label): values for arch, block in entry["rows"].items() for label, values in block.items()}
    columns = pd.MultiIndex.from_tuples([tuple(c.split("|")) for c in entry["columns"]], names=["group", "column"])
    frame = pd.DataFrame(list(rows.values()), index=pd.MultiIndex.from_tuples(list(rows)), columns=columns)
    return frame.astype(float)


def source(name: str) -> str:
    """Where table ``name`` comes from, plus its caveat when it has one."""
    entry = _data()[name]
    return ". ".join(filter(None, (entry["source"], entry.get("note"))))


def names() -> list[str]:
    """Every published table."""
    return [key for key in _data() if key != "figures"]


def figure_notes() -> dict[str, str]:
    """What the spec can read off Fig. 4, E.1 and E.3 (axis ranges and trends, no series)."""
    return dict(_data()["figures"])
