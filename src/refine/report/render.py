"""Write tables as CSV (tidy), Markdown and LaTeX, each with a companion beside the published numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from refine.atomic import atomic_write_text as atomic_write

from .published import source as paper_source
from .records import ARCH_NAMES
from .tables import Table, best_mask, pipeline_only_reason


def _num(x: float, signed: bool = False) -> str:
    """One decimal; a million and more (the perplexity of a model that misses every answer) as ``6.9e+09``."""
    if math.isnan(x):
        return "n/a"
    if abs(x) >= 1e6:
        return f"{x:+.1e}" if signed else f"{x:.1e}"
    return f"{round(x, 1) + 0.0:+.1f}" if signed else f"{x:.1f}"


_BOLD = {"md": "**{}**", "tex": r"\textbf{{{}}}"}
NO_DELTAS = "No Δ rows: this run is not the paper's configuration, so differences are not comparable."
INTERVALS = (
    "± = 95% interval of the mean: Student-t over seeds, or for one seed the normal interval from its test "
    "examples (none where the records lack per-example scores); seeds and examples per cell in the .csv."
)


def _cell(mean: float, half: float, bold: bool, style: str, signed: bool = False) -> str:
    text = _num(mean, signed)
    if bold:
        text = _BOLD[style].format(text)
    if not math.isnan(half) and not math.isnan(mean):
        text += (r" $\pm$ " if style == "tex" else " ± ") + _num(half)
    return text


def _rows(table: Table, companion: bool, deltas: bool, style: str) -> list[list[str]]:
    """Body rows: row labels (arch shown once per block, row labels once per source group), then cells."""
    mean, paper = table.mean, table.paper
    none = np.full(mean.shape, math.nan)
    sources = [("ours", mean.to_numpy(), table.half.to_numpy(), best_mask(mean, table.spec.best).to_numpy())]
    if companion:
        sources.append(("paper", paper.to_numpy(), none, best_mask(paper, table.spec.best).to_numpy()))
        if deltas:
            sources.append(("Δ", (mean - paper).to_numpy(), none, np.zeros(mean.shape, bool)))
    body, last_arch = [], None
    for i, key in enumerate(table.index):
        for source, m, h, b in sources:
            arch = ARCH_NAMES.get(key[0], key[0]) if key[0] != last_arch else ""
            last_arch = key[0]
            labels = [arch, *(key[1:] if source == "ours" else [""] * (len(key) - 1))]
            labels += [source] if companion else []
            body.append(labels + [_cell(m[i, j], h[i, j], b[i, j], style, source == "Δ") for j in range(m.shape[1])])
    return body


def _label_header(table: Table, companion: bool) -> list[str]:
    return ["Arch", *table.spec.row_names] + (["source"] if companion else [])


def _row_name(key: tuple) -> str:
    return " / ".join([ARCH_NAMES.get(key[0], key[0]), *key[1:]])


def na_reasons(table: Table) -> list[tuple[str, list[str]]]:
    """Why cells are n/a, each reason once with the rows it applies to: the whole table, whole rows, or the
    same set of columns missing in several rows."""
    missing = table.missing()
    if not missing:
        return []
    if len(missing) == len(table.index) * len(table.columns):
        return [(table.not_configured or "no evaluation records match any cell (not run)", [])]
    by_row: dict[tuple, list[tuple]] = {}
    for row, col in missing:
        by_row.setdefault(row, []).append(col)
    reasons: dict[str, list[str]] = {}
    for row, cols in by_row.items():
        what = "no records (row not run)" if len(cols) == len(table.columns) else None
        what = what or "no records for " + ", ".join(table.header(c) for c in cols)
        reasons.setdefault(what, []).append(_row_name(row))
    return list(reasons.items())


def _notes(table: Table, companion: bool, deltas: bool) -> list[str]:
    notes = [f"Pipeline only: {pipeline_only_reason(table.pipeline_only)}."] if table.pipeline_only else []
    notes += table.spec.notes
    notes += [f"n/a: {why}" + (f": {'; '.join(rows)}" if rows else "") for why, rows in na_reasons(table)]
    notes.append(INTERVALS)
    if companion:
        notes.append(f"Paper: {paper_source(table.spec.name)}")
        if not deltas:
            notes.append(NO_DELTAS)
    return notes


def to_markdown(table: Table, companion: bool = False, deltas: bool = False) -> str:
    """Markdown table (± = 95% interval half-width, ``stats.cell_half``; bold = best per the paper's rule)."""
    header = _label_header(table, companion) + [table.header(c) for c in table.columns]
    lines = [
        f"### {table.spec.title}{' vs paper' if companion else ''}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(table, companion, deltas, "md")]
    return "\n".join(lines + [""] + [f"* {n}" for n in _notes(table, companion, deltas)]) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\^{}",
    "φ": r"$\varphi$",
    "≙": r"$\widehat{=}$",
    "–": "--",
    "Δ": r"$\Delta$",
    "±": r"$\pm$",
}


_REWARD = re.compile(r"R\^(φ|\w+)")  # R^binary, R^φ -> $R^{\mathrm{binary}}$, $R^{\varphi}$


def _tex(text: str) -> str:
    parts = _REWARD.split(text)  # even: plain text, odd: a reward superscript
    for i, part in enumerate(parts):
        if i % 2:
            parts[i] = r"$R^{\varphi}$" if part == "φ" else rf"$R^{{\mathrm{{{part}}}}}$"
        else:
            parts[i] = "".join(_TEX.get(ch, ch) for ch in part)
    return "".join(parts)


def to_latex(table: Table, companion: bool = False, deltas: bool = False) -> str:
    """booktabs tabular with a spanning header per column group."""
    labels = _label_header(table, companion)
    groups = list(dict.fromkeys(table.columns.get_level_values(0)))
    spans, start = [], len(labels) + 1
    for g in groups:
        width = sum(1 for c in table.columns if c[0] == g)
        spans.append((g, start, width))
        start += width
    lines = [
        r"\begin{tabular}{" + "l" * len(labels) + "c" * len(table.columns) + "}",
        r"\toprule",
        " & " * (len(labels) - 1)
        + " & "
        + " & ".join(rf"\multicolumn{{{w}}}{{c}}{{{_tex(g)}}}" for g, _, w in spans)
        + r" \\",
        "".join(rf"\cmidrule(lr){{{s}-{s + w - 1}}}" for _, s, w in spans),
        " & ".join([_tex(x) for x in labels] + [_tex(table.headers[c]) for c in table.columns]) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(_rows(table, companion, deltas, "tex")):
        if row[0] and i:
            lines.append(r"\midrule")
        lines.append(" & ".join([_tex(x) for x in row[: len(labels)]] + row[len(labels) :]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _cell_view(table: Table, i: int, j: int, deltas: bool, best: np.ndarray, paper_best: np.ndarray) -> dict:
    mean, half, paper = (frame.iat[i, j] for frame in (table.mean, table.half, table.paper))
    delta = mean - paper
    return {
        "ours": None if math.isnan(mean) else _num(mean),
        "half": None if math.isnan(half) else _num(half),
        "n": int(table.n.iat[i, j]),
        "samples": int(table.samples.iat[i, j]),
        "best": bool(best[i, j]),
        "paper": None if math.isnan(paper) else _num(paper),
        "paper_best": bool(paper_best[i, j]),
        "delta": _num(delta, signed=True) if deltas and not math.isnan(delta) else None,
        "sign": "" if not deltas or math.isnan(delta) else "pos" if delta > 0 else "neg" if delta < 0 else "",
    }


def html_view(table: Table, deltas: bool) -> dict:
    """What the HTML report's template shows of a table: grouped headers, row labels (arch once per block
    with its row span), per cell ours (± interval), the paper's value and Δ (only with ``deltas``), n/a reasons
    and notes."""
    best = best_mask(table.mean, table.spec.best).to_numpy()
    paper_best = best_mask(table.paper, table.spec.best).to_numpy()
    groups = [(g, sum(1 for c in table.columns if c[0] == g)) for g in dict.fromkeys(table.columns.get_level_values(0))]
    archs = list(table.index.get_level_values(0))
    rows = [
        {
            "arch": ARCH_NAMES.get(key[0], key[0]) if i == archs.index(key[0]) else None,
            "span": archs.count(key[0]),
            "labels": list(key[1:]),
            "cells": [_cell_view(table, i, j, deltas, best, paper_best) for j in range(len(table.columns))],
        }
        for i, key in enumerate(table.index)
    ]
    missing = table.missing()
    return {
        "name": table.spec.name,
        "title": table.spec.title,
        "label_names": ["Arch", *table.spec.row_names],
        "groups": groups if len(groups) > 1 else [],
        "headers": [table.headers[c] if len(groups) > 1 else table.header(c) for c in table.columns],
        "rows": rows,
        "n_cells": len(table.index) * len(table.columns),
        "n_missing": len(missing),
        "na_reasons": na_reasons(table),
        "notes": list(table.spec.notes),
        "pipeline_only": pipeline_only_reason(table.pipeline_only) if table.pipeline_only else None,
        "paper_source": paper_source(table.spec.name),
        "deltas": deltas,
    }


def to_csv(table: Table, deltas: bool = False) -> str:
    """Tidy CSV: one line per cell with mean, interval, seeds, examples per seed, best mark, paper value and Δ."""
    frames = {
        "mean": table.mean,
        "ci95_half": table.half,
        "n_seeds": table.n,
        "n_samples": table.samples,
        "best": best_mask(table.mean, table.spec.best),
        "paper": table.paper,
    }
    tidy = pd.concat({k: f.stack(["group", "column"], future_stack=True) for k, f in frames.items()}, axis=1)
    tidy["delta"] = tidy["mean"] - tidy["paper"] if deltas else math.nan
    tidy["header"] = [
        table.header(key) for key in zip(tidy.index.get_level_values("group"), tidy.index.get_level_values("column"))
    ]
    return tidy.reset_index().to_csv(index=False, float_format="%.4g")


def write_table(table: Table, out: Path, deltas: bool = False) -> list[Path]:
    """``{name}.csv/.md/.tex`` and ``{name}_paper.md/.tex`` under ``out``; returns the paths."""
    name = table.spec.name
    files = {
        f"{name}.csv": to_csv(table, deltas),
        f"{name}.md": to_markdown(table),
        f"{name}.tex": to_latex(table),
        f"{name}_paper.md": to_markdown(table, True, deltas),
        f"{name}_paper.tex": to_latex(table, True, deltas),
    }
    for filename, text in files.items():
        atomic_write(out / filename, text)
    return [out / f for f in files]
