"""The paper's tables built from evaluation records: one builder, one spec per table.

A table is a set of rows (per architecture) times columns; each has a ``where`` filter on the normalized
records (``records.normalize``). A cell's value for one seed is the mean score of the records that pass both
filters. A tuple in a filter means "average over all of these", and a seed counts only if every member is
present (so Avg columns and family averages never average over a partial set). Each seed's value carries the
sampling variance of its mean over test examples (from the records' ``score_sd`` and ``n``) and its example
count. Cells report the mean over seeds and the 95% interval half-width (``stats.cell_half``: over seeds, or
from the samples for one seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .published import published
from .records import ARCHS, LENGTHS, LONGBENCH, NIAH_FAMILIES, OFFLINE_ACCURACY, SHORT_COLUMNS, SHORT_TASKS
from .stats import as_cell, cell_half


@dataclass(frozen=True)
class Row:
    label: tuple[str, ...]
    where: dict


@dataclass(frozen=True)
class Col:
    group: str
    label: str
    where: dict


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    row_names: tuple[str, ...]
    rows: tuple[Row, ...]
    cols: tuple[Col, ...]
    best: str | None = "column"  # best value marked per column within an arch, per "row", or not at all
    notes: tuple[str, ...] = ()
    unit: str = "score (%)"
    seeds: tuple[int, ...] = ()  # the seeds its cells average over (empty: every seed)


@dataclass
class Table:
    """Built table: per-seed values per cell, with frames of means, interval half-widths, seed and example
    counts."""

    spec: Spec
    index: pd.MultiIndex
    columns: pd.MultiIndex
    values: dict[tuple, pd.DataFrame]  # (row key, col key) -> per seed: value, var (sampling), n (examples)
    headers: dict[tuple, str]  # col key -> column label shown under its group
    not_configured: str | None = None  # why every cell is n/a when the config leaves the table's family out
    pipeline_only: tuple[str, ...] = ()  # its families that test the pipeline only here (config report.pipeline_only)

    def _frame(self, fn) -> pd.DataFrame:
        data = [[fn(self.values[(r, c)]) for c in self.columns] for r in self.index]
        return pd.DataFrame(data, index=self.index, columns=self.columns, dtype=float)

    @cached_property
    def mean(self) -> pd.DataFrame:
        return self._frame(lambda v: v["value"].mean() if len(v) else math.nan)

    @cached_property
    def half(self) -> pd.DataFrame:
        return self._frame(cell_half)

    @cached_property
    def n(self) -> pd.DataFrame:
        """Seeds per cell."""
        return self._frame(len)

    @cached_property
    def samples(self) -> pd.DataFrame:
        """Test examples per seed of a cell (summed over the records it averages; the fewest over its seeds)."""
        return self._frame(lambda v: v["n"].min() if len(v) else 0)

    def header(self, col: tuple) -> str:
        """Display name of a column: ``group label`` unless the table has one group or the label names it."""
        single = self.columns.get_level_values(0).nunique() == 1
        return self.headers[col] if single or col[1].startswith(col[0]) else f"{col[0]} {self.headers[col]}"

    def cell(self, row: tuple, col: tuple) -> pd.DataFrame:
        """Per-seed ``value``, sampling ``var`` and ``examples`` (``stats.as_cell``) of one cell (empty when not
        run)."""
        return self.values.get((row, col), _EMPTY)[["value", "var", "examples"]]

    @cached_property
    def paper(self) -> pd.DataFrame:
        """Published numbers aligned to this layout (NaN where the paper has none)."""
        return published(self.spec.name).reindex(index=self.index, columns=self.columns)

    def as_paper(self) -> Table:
        """The same layout holding the published numbers (one value per cell), for the same checks."""
        paper = self.paper.to_numpy()
        values = {
            (r, c): as_cell(pd.Series(paper[i, j : j + 1])).assign(n=0.0)
            for i, r in enumerate(self.index)
            for j, c in enumerate(self.columns)
        }
        return Table(self.spec, self.index, self.columns, values, self.headers)

    def missing(self) -> list[tuple[tuple, tuple]]:
        """(row key, col key) of every n/a cell, in table order."""
        return [(r, c) for r in self.index for c in self.columns if not len(self.values[(r, c)])]


def _best(values: np.ndarray) -> np.ndarray:
    """True at the maximum of ``values``, nowhere if all present values are equal (the paper's rule)."""
    present = values[~np.isnan(values)]
    if len(np.unique(present)) < 2:
        return np.zeros(values.shape, bool)
    return values == present.max()


def best_mask(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """True at the best value per column within each arch (``by="column"``), per row (``"row"``), or nowhere."""
    values, mask = frame.to_numpy(float), np.zeros(frame.shape, bool)
    if by == "row":
        for i in range(len(frame)):
            mask[i] = _best(values[i])
    elif by == "column":
        archs = frame.index.get_level_values(0)
        for arch in archs.unique():
            rows = np.flatnonzero(archs == arch)
            for j in range(frame.shape[1]):
                mask[rows, j] = _best(values[rows, j])
    return pd.DataFrame(mask, index=frame.index, columns=frame.columns)


def _match(record: dict, where: dict) -> bool:
    return all(record[k] in v if isinstance(v, (tuple, list)) else record[k] == v for k, v in where.items())


_EMPTY = pd.DataFrame(
    {"value": pd.Series(dtype=float), "var": pd.Series(dtype=float), "n": pd.Series(dtype=float),
     "examples": pd.Series(dtype=object)},
    index=pd.Index([], dtype=int),
)  # fmt: skip


def _mean(parts: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """(value, sampling variance, examples) of the mean of independent parts given as the same triples."""
    k = len(parts)
    return sum(p[0] for p in parts) / k, sum(p[1] for p in parts) / k**2, sum(p[2] for p in parts)


def _seed_values(records: list[dict], where: dict) -> pd.DataFrame:
    """Per seed of the records passing ``where`` (tuple values: all members required, averaged): ``value``,
    ``var`` (sampling variance of that mean: score_sd^2 / n per record; NaN if a record lacks it), ``n``
    (examples) and ``examples`` (``stats.Units``: each member's per-example scores with weight 1/members; None
    if a member lacks them or has several records)."""
    multi = [k for k, v in where.items() if isinstance(v, (tuple, list))]
    units: dict[tuple, list[dict]] = {}
    for r in records:
        if _match(r, where):
            units.setdefault((r["seed"], *(r[k] for k in multi)), []).append(r)
    per_seed: dict[int, dict[tuple, list[dict]]] = {}
    for key, rows in units.items():
        per_seed.setdefault(key[0], {})[key[1:]] = rows
    need = math.prod(len(where[k]) for k in multi)
    complete = {}
    for seed, members in sorted(per_seed.items()):
        if len(members) == need:
            value, var, n = _mean([_mean([_part(r) for r in rows]) for rows in members.values()])
            scores = [rows[0].get("example_scores") if len(rows) == 1 else None for rows in members.values()]
            examples = None
            if all(isinstance(s, dict) for s in scores):
                examples = {u: (1 / need, pd.Series(s)) for u, s in zip(members, scores)}
            complete[seed] = (value, var, n, examples)
    if not complete:
        return _EMPTY
    frame = pd.DataFrame(list(complete.values()), index=pd.Index(list(complete), dtype=int), columns=_EMPTY.columns)
    return frame.astype({"value": float, "var": float, "n": float})


def _part(record: dict) -> tuple[float, float, int]:
    """(score, sampling variance of the score, examples) of one record."""
    n = record.get("n", 0)
    n = 0 if pd.isna(n) else int(n)
    return record["score"], record.get("score_sd", math.nan) ** 2 / n if n else math.nan, n


def _fmt_length(tokens) -> str:
    tokens = int(tokens)
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def _header(df: pd.DataFrame, col: Col) -> str:
    """Column label; a length column evaluated at other lengths than its paper label reads ``1K (≙4K)``."""
    if isinstance(col.where.get("length_label"), str):
        actual = {_fmt_length(x) for x in df.loc[df["length_label"].eq(col.label), "length"].dropna()}
        if actual and actual != {col.label}:
            return f"{'/'.join(sorted(actual))} (≙{col.label})"
    return col.label


def build(
    records: pd.DataFrame, spec: Spec, archs: tuple[str, ...] | None = None, _rows: list[dict] | None = None
) -> Table:
    """Table ``spec`` from normalized records; rows for ``archs`` (default: the archs present, paper order).
    ``_rows`` is ``records.to_dict("records")`` when the caller already has it."""
    present = list(records["arch"].unique()) if len(records) else []
    archs = archs or tuple([a for a in ARCHS if a in present] + sorted(set(present) - set(ARCHS))) or ARCHS
    index = pd.MultiIndex.from_tuples(
        [(a, *row.label) for a in archs for row in spec.rows], names=["arch", *spec.row_names]
    )
    columns = pd.MultiIndex.from_tuples([(c.group, c.label) for c in spec.cols], names=["group", "column"])
    values = {}
    families = {c.where.get("family") for c in spec.cols}
    relevant = [
        r
        for r in (records.to_dict("records") if _rows is None else _rows)
        if r["family"] in families and (not spec.seeds or r["seed"] in spec.seeds)
    ]
    for arch in archs:
        for row in spec.rows:
            row_records = [r for r in relevant if _match(r, {"arch": arch, **row.where})]
            for col in spec.cols:
                values[((arch, *row.label), (col.group, col.label))] = _seed_values(row_records, col.where)
    headers = {(c.group, c.label): _header(records, c) for c in spec.cols}
    return Table(spec, index, columns, values, headers)


# ---- specs -------------------------------------------------------------------------------------------------


def _group(group: str, where: dict, key: str, values, labels=None) -> list[Col]:
    """Columns ``values`` of one group, then its Avg (the same filter over all of them)."""
    values, labels = tuple(values), tuple(labels or values)
    return [Col(group, lab, {**where, key: v}) for v, lab in zip(values, labels)] + [
        Col(group, "Avg", {**where, key: values})
    ]


def _mid(method: str | None, ttt: str = "none") -> dict:
    return {"stage": "base", "ttt": ttt} if method is None else {"stage": "mid", "method": method, "ttt": ttt}


def _post(method: str, ttt: str = "none") -> dict:
    return {"stage": "post", "method": method, "ttt": ttt, "own_task": True}


MID_ROWS = (Row(("base",), _mid(None)), Row(("+ SFT MidTr",), _mid("sft")), Row(("+ REFINE MidTr",), _mid("refine")))


FAMILY_AVERAGES = {
    "longbench": "LongBench 12-task average",
    "qa": "RULER QA average (2 tasks x 3 lengths)",
    "niah": "NIAH average ({} families x 3 lengths)",  # the families evaluated (niah_tasks)
    "short": "short-context accuracy average",
}


FAMILY_NAMES = {"niah": "NIAH", "qa": "RULER QA", "longbench": "LongBench", "short": "short-context"}


def family_names(families) -> str:
    """``LongBench``, ``NIAH and RULER QA``: display names of evaluation families."""
    return " and ".join(FAMILY_NAMES.get(f, f) for f in sorted(families))


def pipeline_only_reason(families) -> str:
    """What a table whose ``families`` test the pipeline only at this scale says (``Table.pipeline_only``)."""
    return (
        f"at this scale the {family_names(families)} cells test the pipeline only (config report.pipeline_only): "
        "their scores are no evidence for or against the paper, and the claims resting on them read NOT MEASURABLE"
    )


def family_units(family: str, niah: dict[str, str] = NIAH_FAMILIES) -> dict:
    """Filter for a family's paper average: LongBench 12 tasks, QA 2 tasks x 3 lengths, NIAH 4 x 3, short 6."""
    units = {
        "longbench": {"task_key": tuple(LONGBENCH.values())},
        "qa": {"task_key": ("squad", "hotpot"), "length_label": LENGTHS},
        "niah": {"task": tuple(niah.values()), "length_label": LENGTHS},
        "short": {"task_key": tuple(SHORT_TASKS.values())},
    }[family]
    return {"family": family, **units}


def _short_columns() -> tuple[Col, ...]:
    """Table E.1: one column per `SHORT_COLUMNS` cell in its group; Accuracy ends with Avg, the paper's mean of
    its six columns (spec 7.6), and the Offline group with "acc Avg", the mean of its accuracy stand-ins."""
    cols = []
    for group in dict.fromkeys(g for g, _ in SHORT_COLUMNS.values()):
        if group == "Accuracy":
            cols += _group(group, {"family": "short"}, "task_key", SHORT_TASKS.values())
        else:
            cols += [Col(group, c, {"family": "short", "task": t}) for t, (g, c) in SHORT_COLUMNS.items() if g == group]
    return (*cols, Col("Offline", "acc Avg", {"family": "short", "task": OFFLINE_ACCURACY}))


def specs(
    niah: dict[str, str] = NIAH_FAMILIES,
    ablation_family: str = "longbench",
    niah_tasks: tuple[str, ...] = (),
    ablation_seeds: tuple[int, ...] = (),
) -> dict[str, Spec]:
    """Every table, keyed like ``published.yaml``. ``niah`` maps Table 3 families to lm-eval tasks;
    ``ablation_family`` is the average the ablation tables use (the paper: LongBench); its NIAH average runs over
    ``niah_tasks``, the tasks evaluated (empty: all of ``niah``). The ablation tables average every column,
    REFINE's own too, over ``ablation_seeds``, the seeds the variants ran at (empty: every seed), so a variant
    meets REFINE on the same seeds and data order."""
    fam = family_units(ablation_family, {k: t for k, t in niah.items() if t in (niah_tasks or niah.values())})
    average = FAMILY_AVERAGES[ablation_family].format(len(fam.get("task", ())))
    unit = f"{average} (%)"
    seeds = tuple(ablation_seeds)
    fam_note = (
        f"Cells: {average}, over "
        + " x ".join(f"{k} ({', '.join(v)})" for k, v in fam.items() if isinstance(v, tuple))
        + (f"; every column at seed {', '.join(map(str, seeds))} (ablations.seeds), REFINE's own too" if seeds else "")
        + ".",
    )

    def abl(group: str, cells: dict[str, dict]) -> tuple[Col, ...]:
        return tuple(Col(group, label, {**where, **fam}) for label, where in cells.items())

    ref = "REFINE"
    return {
        s.name: s
        for s in (
            Spec(
                "table3",
                "Table 3: RULER NIAH after mid-training (string_match_all, %)",
                ("Model",),
                MID_ROWS,
                tuple(
                    c
                    for f, task in niah.items()
                    for c in _group(f, {"family": "niah", "task": task}, "length_label", LENGTHS)
                ),
                notes=("NIAH families: " + ", ".join(f"{f} = {t}" for f, t in niah.items()) + ".",),
            ),
            Spec(
                "table4",
                "Table 4: RULER multi-doc QA (string_match_part, %)",
                ("MidTr", "PostTr", "TTT"),
                (
                    Row(("–", "–", "–"), _mid(None)),
                    Row(("SFT", "–", "–"), _mid("sft")),
                    Row((ref, "–", "–"), _mid("refine")),
                    Row((ref, "SFT", "–"), _post("sft")),
                    Row((ref, "Nested SFT", "–"), _post("nested_sft")),
                    Row((ref, "Nested REFINE", "–"), _post("nested_refine")),
                    Row((ref, "Nested REFINE", "SFT"), _post("nested_refine", "sft")),
                    Row((ref, "Nested REFINE", ref), _post("nested_refine", "refine")),
                ),
                tuple(
                    c
                    for key, name in (("squad", "SQuADQA"), ("hotpot", "HotpotQA"))
                    for c in _group(name, {"family": "qa", "task_key": key}, "length_label", LENGTHS)
                ),
            ),
            Spec(
                "table5",
                "Table 5: LongBench (12 tasks, official metrics, %)",
                ("MidTr", "TTT"),
                (
                    Row(("–", "–"), _mid(None)),
                    Row(("SFT", "–"), _mid("sft")),
                    Row((ref, "–"), _mid("refine")),
                    Row((ref, "SFT"), _mid("refine", "sft")),
                    Row((ref, ref), _mid("refine", "refine")),
                ),
                tuple(_group("LongBench", {"family": "longbench"}, "task_key", LONGBENCH.values())),
            ),
            Spec(
                "table6",
                "Table 6: reward function in mid-training",
                (),
                (Row((), {}),),
                abl("Reward", {"R^binary": _mid("refine_binary"), "R^φ (cos)": _mid("refine")}),
                best="row",
                notes=fam_note,
                unit=unit,
                seeds=seeds,
            ),
            Spec(
                "table7",
                "Table 7: token selection in mid-training",
                (),
                (Row((), {}),),
                abl(
                    "Selection",
                    {
                        "Uniform": _mid("refine_uniform"),
                        "argmax H": _mid("refine_argmax"),
                        "argmin H": _mid("refine_argmin"),
                        "Entropy-weighted": _mid("refine"),
                    },
                ),
                best="row",
                notes=fam_note,
                unit=unit,
                seeds=seeds,
            ),
            Spec(
                "tableE2",
                "Table E.2: reward in test-time training (MidTr = REFINE)",
                (),
                (Row((), {}),),
                abl(
                    "TTT",
                    {
                        "none": _mid("refine"),
                        "SFT": _mid("refine", "sft"),
                        "REFINE R^φ": _mid("refine", "refine_cosine"),
                        "REFINE R^binary": _mid("refine", "refine"),
                    },
                ),
                best="row",
                notes=fam_note,
                unit=unit,
                seeds=seeds,
            ),
            Spec(
                "tableE1",
                "Table E.1: short-context lm-eval tasks after mid-training (perplexity; recall, accuracy in %)",
                ("Model",),
                MID_ROWS,
                _short_columns(),
                best=None,  # perplexity columns are lower-better
                notes=(
                    "Cells: lm-eval task-metric records (refine evaluate short). Perplexity, Recall and Accuracy are "
                    "the paper's tasks: lm-eval downloads their datasets from the hub, so an offline run (the "
                    "default and smoke configs) leaves them n/a and runs the local tasks built from the corpus "
                    "validation split instead (Offline columns; config short_eval.tasks).",
                ),
            ),
            Spec(
                "fig5",
                "Fig. 5 data: rollout length k and chunks c in mid-training",
                (),
                (Row((), {}),),
                abl("k", {f"k={k}": _mid("refine" if k == 5 else f"refine_k{k}") for k in (1, 3, 5, 7)})
                + abl("c", {f"c={c}": _mid("refine" if c == 8 else f"refine_c{c}") for c in (2, 4, 6, 8)}),
                best=None,
                notes=fam_note + ("k=5 and c=8 are the default REFINE run.",),
                unit=unit,
                seeds=seeds,
            ),
        )
    }


def build_all(
    records: pd.DataFrame,
    niah: dict[str, str] = NIAH_FAMILIES,
    ablation_family: str = "longbench",
    niah_tasks: tuple[str, ...] = (),
    ablation_seeds: tuple[int, ...] = (),
) -> dict[str, Table]:
    """Every table of ``specs`` from normalized records."""
    rows = records.to_dict("records")
    tables = specs(niah, ablation_family, niah_tasks, ablation_seeds)
    return {name: build(records, spec, _rows=rows) for name, spec in tables.items()}
