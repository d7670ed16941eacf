"""The report: one self-contained HTML page (figures inlined as base64 PNG) and a Markdown twin, both rendered
from Jinja2 templates (``templates/``): a summary of what ran, the claims' verdicts, the tables beside the
paper's values, the figures with captions."""

from __future__ import annotations

import base64
import math
import os
from functools import cache
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from . import render
from .claims import VERDICTS
from .figures import captions
from .provenance import Provenance
from .records import ARCH_NAMES
from .tables import Table

NUMERIC = ("diff", "ci95_lo", "ci95_hi", "rel_pct", "n_seeds", "paper_diff", "paper_rel_pct")
SHORT_NAMES = {"tableE1": "E.1", "tableE2": "E.2", "fig5": "Fig. 5"}


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("refine.report", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, params=params, arch=lambda a: ARCH_NAMES.get(a, a))
    return env


def duration(seconds: float) -> str:
    """``1h 02m``, ``3m 05s`` or ``12.3s``."""
    if math.isnan(seconds):
        return "n/a"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m:02d}m" if hours else f"{m}m {s:02d}s" if m else f"{seconds:.1f}s"


def params(n: int) -> str:
    """Parameter count as ``1.23M`` / ``1.4B``."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _effect(diff: float, lo: float, hi: float, rel: float) -> str:
    if math.isnan(diff):
        return ""
    text = f"{diff:+.2f}" + ("" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
    return text + ("" if math.isnan(rel) else f" ({rel:+.1f}%)")


def claims_view(claims: pd.DataFrame) -> list[dict]:
    """One line per claim for the template: verdict and why (``claims.decide``), arch, the statement without its
    arch, both effects. ``claims`` is ``claims.run_claims``'s frame or its CSV read back (an empty numeric column
    reads as text)."""
    claims = claims.assign(**{c: pd.to_numeric(claims[c], errors="coerce") for c in NUMERIC if c in claims})
    out = []
    for r in claims.itertuples():
        arch = ARCH_NAMES.get(r.claim.rsplit(".", 1)[-1], "")
        out.append(
            {
                "name": r.claim,
                "verdict": r.status,
                "why": "" if pd.isna(r.why) else r.why,
                "arch": arch,
                "text": r.statement.removeprefix(f"{arch}: "),
                "ours": _effect(r.diff, r.ci95_lo, r.ci95_hi, r.rel_pct),
                "n": int(r.n_seeds),
                "paper": _effect(r.paper_diff, math.nan, math.nan, r.paper_rel_pct),
                "detail": "" if pd.isna(r.detail) else r.detail,
            }
        )
    return out


def _pipeline_only(views: list[dict]) -> dict[str, list[str]]:
    """Each pipeline-only reason once, with the tables (short names) it applies to."""
    out: dict[str, list[str]] = {}
    for view in views:
        if view["pipeline_only"]:
            out.setdefault(view["pipeline_only"], []).append(view["short"])
    return out


def _context(tables: dict[str, Table], claims: pd.DataFrame, deltas: bool, run: Provenance) -> dict:
    views = []
    for table in tables.values():
        view = render.html_view(table, deltas)
        view["empty"] = view["n_missing"] == view["n_cells"]
        view["short"] = SHORT_NAMES.get(table.spec.name, table.spec.name.removeprefix("table"))
        views.append(view)
    lines = claims_view(claims)
    counts = {v: sum(c["verdict"] == v for c in lines) for v in VERDICTS}
    return {
        "run": run,
        "n_records": sum(run.records.values()),
        "counts": {v: n for v, n in counts.items() if n},
        "claims": lines,
        "ran": sorted((c for c in lines if c["verdict"] != "NOT RUN"), key=lambda c: VERDICTS.index(c["verdict"])),
        "not_run": [c for c in lines if c["verdict"] == "NOT RUN"],
        "tables": views,
        "deltas": deltas,
        "no_deltas": render.NO_DELTAS,
        "intervals": render.INTERVALS,
        "pipeline_only": _pipeline_only(views),
        "config_yaml": yaml.safe_dump(run.config, sort_keys=False) if run.config else "",
    }


def to_html(tables: dict[str, Table], claims: pd.DataFrame, figures: list[Path], deltas: bool, run: Provenance) -> str:
    """The self-contained report page (``templates/report.html.j2``); PNG figures inlined as base64."""
    text = captions()
    shown = [
        {"name": p.stem, "caption": text.get(p.stem, ""), "data": base64.b64encode(p.read_bytes()).decode()}
        for p in figures
        if p.suffix == ".png"
    ]
    return _env().get_template("report.html.j2").render(figures=shown, **_context(tables, claims, deltas, run))


def to_markdown(
    tables: dict[str, Table], claims: pd.DataFrame, figures: list[Path], base: Path, deltas: bool, run: Provenance
) -> str:
    """Markdown twin (``templates/report.md.j2``): summary, claims, tables beside the paper, figure links."""
    text = captions()
    shown = [
        {"name": p.stem, "caption": text.get(p.stem, ""), "path": Path(os.path.relpath(p, base)).as_posix()}
        for p in figures
        if p.suffix == ".png"
    ]
    return (
        _env()
        .get_template("report.md.j2")
        .render(
            figures=shown,
            tables_md=[render.to_markdown(t, companion=True, deltas=deltas) for t in tables.values()],
            **_context(tables, claims, deltas, run),
        )
    )
