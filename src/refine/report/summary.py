"""One summary document (Markdown, and HTML with the figures embedded) of tables, claims and figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from . import render
from .claims import to_markdown as claims_markdown
from .tables import Table

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
)


def to_markdown(tables: dict[str, Table], claims: pd.DataFrame, figures: list[Path], base: Path, deltas: bool) -> str:
    """Markdown: claims first, then every table beside the paper, then links to the figures (relative)."""
    parts = ["# REFINE reproduction report", "", claims_markdown(claims)]
    parts += [render.to_markdown(t, companion=True, deltas=deltas) for t in tables.values()]
    parts += ["### Figures", ""] + [f"![{p.stem}]({p.relative_to(base)})" for p in figures if p.suffix == ".png"]
    return "\n".join(parts) + "\n"


def to_html(tables: dict[str, Table], claims: pd.DataFrame, figures: list[Path], deltas: bool) -> str:
    """Self-contained HTML (PNG figures inlined as base64)."""
    images = "".join(
        f'<h3>{html.escape(p.stem)}</h3><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}">\n'
        for p in figures
        if p.suffix == ".png"
    )
    body = "".join(render.to_html(t, companion=True, deltas=deltas) for t in tables.values())
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>REFINE reproduction report</title>"
        f"<style>{STYLE}</style></head><body><h1>REFINE reproduction report</h1><h2>Claims</h2>"
        f"{claims.to_html(index=False, na_rep='', float_format='%.2f')}<h2>Tables</h2>{body}"
        f"<h2>Figures</h2>{images}</body></html>\n"
    )
