"""Spec section 9's claims as named checks on the built tables and training metrics, and their verdicts.

Each check computes an effect: the difference in score points with its 95% interval (``stats.compare``: paired
over seeds, or from the test samples for a single seed), and the same relative to the baseline in percent.
The verdict (``decide``; docs/design.md, "Claim statistics") is decided by the interval, not the estimate:

* PASS: the interval lies on the claimed side of 0 (of ``-margin`` for a tolerance; a trend: every step's);
* FAIL: it lies on the other side (a trend: some step's);
* INCONCLUSIVE: it includes 0 (both sides scoring the same, at [0, 0], says so), or there is no interval (one seed
  without per-example scores);
* FLOOR / CEILING: every compared value is 0 / 100: the replica cannot decide (not: the paper is wrong);
* NOT MEASURABLE: a table the claim reads tests the pipeline only at this scale (config report.pipeline_only);
* NOT RUN: a cell the claim needs has no records.

The same check on the published numbers (one value per cell, no interval) gives the paper's effect and its
point-estimate status beside ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise

import pandas as pd

from .published import figure_notes
from .records import ARCH_NAMES, OFFLINE_ACCURACY, QA_TASKS, SHORT_TASKS
from .stats import Effect, Units, as_cell, compare
from .tables import Table, family_names

Tables = dict[str, Table]
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "FLOOR", "CEILING", "NOT MEASURABLE", "NOT RUN")
FORGETTING_TOLERANCE = 0.2  # points below the base model's short-context average still counted as no forgetting
_EPS = 1e-9


@dataclass(frozen=True)
class Cells:
    """Per-seed mean over ``cols`` of one row of a table (a seed needs every column), with its sampling
    variance and examples (``stats.as_cell``)."""

    table: str
    row: tuple
    cols: tuple

    def __call__(self, tables: Tables) -> pd.DataFrame:
        if self.table not in tables:
            return as_cell(pd.Series(dtype=float))
        parts = [tables[self.table].cell(self.row, col) for col in self.cols]
        if not all(len(p) for p in parts):
            return as_cell(pd.Series(dtype=float))
        seeds = sorted(set.intersection(*(set(p.index) for p in parts)))
        value = sum(p.loc[seeds, "value"] for p in parts) / len(parts)
        var = sum(p.loc[seeds, "var"] for p in parts) / len(parts) ** 2
        examples = pd.Series([_merge([p.at[s, "examples"] for p in parts]) for s in seeds], index=seeds, dtype=object)
        return pd.DataFrame({"value": value, "var": var, "examples": examples})

    def pipeline_only(self, tables: Tables) -> tuple[str, ...]:
        return tables[self.table].pipeline_only if self.table in tables else ()


def _merge(parts: list) -> Units | None:
    """The examples of the mean of ``parts`` (``stats.Units`` each; None if any lacks them)."""
    if not all(isinstance(p, dict) for p in parts):
        return None
    return {(i, unit): (w / len(parts), s) for i, p in enumerate(parts) for unit, (w, s) in p.items()}


def cell(table: str, row: tuple, *cols: tuple) -> Cells:
    return Cells(table, row, cols)


@dataclass(frozen=True)
class Given:
    """Per-seed values computed elsewhere (training metrics): no sampling variance, no table."""

    values: pd.Series

    def __call__(self, tables: Tables) -> pd.DataFrame:
        return as_cell(self.values)

    def pipeline_only(self, tables: Tables) -> tuple[str, ...]:
        return ()


Source = Cells | Given


@dataclass(frozen=True)
class Outcome:
    """What a check measured: the effect, the claim's threshold (it holds when the difference exceeds
    ``-margin``), for a trend the effect of each step (the claim holds when every step's does), the per-seed
    values compared (for FLOOR / CEILING; empty: not bounded scores) and the families it rests on that test the
    pipeline only at this scale."""

    effect: Effect | None
    detail: str = ""
    margin: float = 0.0
    steps: tuple[Effect, ...] = ()
    sides: tuple[pd.Series, ...] = ()
    pipeline_only: tuple[str, ...] = ()


def decide(outcome: Outcome) -> tuple[str, str]:
    """(verdict, why) of an outcome; the rules are the module docstring's, in that order of precedence from
    NOT RUN up."""
    effect = outcome.effect
    if effect is None:
        return "NOT RUN", "a cell the claim needs has no records"
    if outcome.pipeline_only:
        return "NOT MEASURABLE", (
            f"not measurable at this scale: {family_names(outcome.pipeline_only)} tests the pipeline only here "
            "(config report.pipeline_only)"
        )
    values = pd.concat(outcome.sides) if outcome.sides else pd.Series(dtype=float)
    for bound, verdict in ((0.0, "FLOOR"), (100.0, "CEILING")):
        if len(values) and ((values - bound).abs() < _EPS).all():
            return verdict, f"every compared value is {bound:g}: the replica cannot decide"
    if outcome.steps:
        if all(step.lo > 0 for step in outcome.steps):
            return "PASS", f"every step's 95% interval ({effect.interval}) above 0"
        if any(step.hi < 0 for step in outcome.steps):
            return "FAIL", f"a step's 95% interval ({effect.interval}) below 0"
        return "INCONCLUSIVE", f"a step's 95% interval ({effect.interval}) includes 0, or there is none"
    threshold = f"{-outcome.margin:+.2f}" if outcome.margin > _EPS else "0"
    if math.isnan(effect.half):
        return "INCONCLUSIVE", f"no interval ({effect.interval or 'one value per side'})"
    if outcome.margin <= _EPS and abs(effect.diff) < _EPS and effect.half < _EPS:  # a tolerance is met at [0, 0]
        return "INCONCLUSIVE", f"both sides score the same ({effect.interval}, interval [0, 0]): cannot decide"
    if effect.lo > -outcome.margin:
        return "PASS", f"95% interval ({effect.interval}) above {threshold}"
    if effect.hi < -outcome.margin:
        return "FAIL", f"95% interval ({effect.interval}) below {threshold}"
    return "INCONCLUSIVE", f"95% interval ({effect.interval}) includes {threshold}"


def point_status(outcome: Outcome) -> str:
    """PASS / FAIL of the point estimate alone (the paper's numbers), NOT RUN without an effect."""
    if outcome.effect is None:
        return "NOT RUN"
    diffs = [step.diff for step in outcome.steps] or [outcome.effect.diff]
    return "PASS" if min(diffs) > -outcome.margin else "FAIL"


def _reason(tables: Tables, sources: tuple[Source, ...]) -> str | None:
    return tuple(sorted({f for s in sources for f in s.pipeline_only(tables)}))


def greater(a: Source, b: Source, per_task: tuple[str, tuple, tuple] | None = None, relative: bool = True):
    """``a`` beats ``b``; ``per_task`` = (table, row a, row b) adds the per-column win count to the detail;
    ``relative=False`` drops the relative effect and the FLOOR/CEILING test (when ``b`` is itself a
    difference)."""

    def evaluate(tables: Tables) -> Outcome:
        va, vb = a(tables), b(tables)
        effect = compare(va, vb)
        if effect is not None and not relative:
            effect = replace(effect, base=math.nan)
        detail = ""
        if per_task and effect is not None and per_task[0] in tables:
            t = tables[per_task[0]]
            cols = [c for c in t.columns if c[1] != "Avg"]
            wins = sum(t.cell(per_task[1], c)["value"].mean() > t.cell(per_task[2], c)["value"].mean() for c in cols)
            detail = f"wins {wins}/{len(cols)} columns"
        sides = (va["value"], vb["value"]) if relative else ()
        return Outcome(effect, detail, sides=sides, pipeline_only=_reason(tables, (a, b)))

    return evaluate


def not_worse(a: Source, b: Source, tolerance: float):
    """``a`` is at most ``tolerance`` points below ``b``."""

    def evaluate(tables: Tables) -> Outcome:
        va, vb = a(tables), b(tables)
        return Outcome(
            compare(va, vb),
            f"tolerance {tolerance}",
            margin=tolerance + _EPS,
            sides=(va["value"], vb["value"]),
            pipeline_only=_reason(tables, (a, b)),
        )

    return evaluate


def no_forgetting(arch: str):
    """Claim 8 on Table E.1's accuracy average: the paper's tasks, or the offline stand-ins when REFINE or the base
    model lacks the paper's (an offline run)."""

    def sides(col: tuple[str, str]) -> tuple[Cells, Cells]:
        return tuple(cell("tableE1", (arch, row), col) for row in ("+ REFINE MidTr", "base"))

    def evaluate(tables: Tables) -> Outcome:
        offline = not all(len(side(tables)) for side in sides(("Accuracy", "Avg")))
        check = not_worse(*sides(("Offline", "acc Avg") if offline else ("Accuracy", "Avg")), FORGETTING_TOLERANCE)
        outcome = check(tables)
        return replace(outcome, detail=outcome.detail + "; offline stand-ins") if offline else outcome

    return evaluate


def best_of(target: str, options: dict[str, Source]):
    """Option ``target`` has the highest mean; the effect is over the best other option."""

    def evaluate(tables: Tables) -> Outcome:
        values = {k: f(tables) for k, f in options.items()}
        if any(v.empty for v in values.values()):
            return Outcome(None)
        means = {k: v["value"].mean() for k, v in values.items()}
        rival = max((k for k in values if k != target), key=means.get)
        order = " > ".join(sorted(means, key=means.get, reverse=True))
        return Outcome(
            compare(values[target], values[rival]),
            f"vs {rival}; order {order}",
            sides=tuple(v["value"] for v in values.values()),
            pipeline_only=_reason(tables, tuple(options.values())),
        )

    return evaluate


def increasing(options: dict[str, Source]):
    """The scores rise at every step along ``options``; the effect shown is last minus first."""

    def evaluate(tables: Tables) -> Outcome:
        values = [f(tables) for f in options.values()]
        if any(v.empty for v in values):
            return Outcome(None)
        means = [v["value"].mean() for v in values]
        return Outcome(
            compare(values[-1], values[0]),
            ", ".join(f"{k}: {m:.1f}" for k, m in zip(options, means)),
            steps=tuple(compare(b, a) for a, b in pairwise(values)),
            sides=tuple(v["value"] for v in values),
            pipeline_only=_reason(tables, tuple(options.values())),
        )

    return evaluate


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    evaluate: Callable[[Tables], Outcome]  # decided by `decide`


def table_claims(archs: tuple[str, ...]) -> list[Claim]:
    """Claims 1-8 of spec section 9, per architecture."""
    t4 = {
        "base": ("–", "–", "–"),
        "mid-sft": ("SFT", "–", "–"),
        "mid-refine": ("REFINE", "–", "–"),
        "post-sft": ("REFINE", "SFT", "–"),
        "post-nested_sft": ("REFINE", "Nested SFT", "–"),
        "post-nested_refine": ("REFINE", "Nested REFINE", "–"),
        "ttt-sft": ("REFINE", "Nested REFINE", "SFT"),
        "ttt-refine": ("REFINE", "Nested REFINE", "REFINE"),
    }
    t5 = {
        "mid-sft": ("SFT", "–"),
        "mid-refine": ("REFINE", "–"),
        "ttt-sft": ("REFINE", "SFT"),
        "ttt-refine": ("REFINE", "REFINE"),
    }
    qa_avg = [(name, "Avg") for name in QA_TASKS.values()]
    headline = {"lact": (8.5, 15.3, 9.5), "deltanet": (20.3, 11.0, 15.0)}
    claims = []
    for arch in archs:
        A = ARCH_NAMES.get(arch, arch)
        lb = lambda k, a=arch: cell("table5", (a, *t5[k]), ("LongBench", "Avg"))
        q = lambda k, *cols, a=arch: cell("table4", (a, *t4[k]), *cols)
        for stage, (a, b), printed in zip(
            ("mid", "post", "ttt"),
            (("mid-refine", "mid-sft"), ("post-nested_refine", "post-nested_sft"), ("ttt-refine", "ttt-sft")),
            headline.get(arch, (math.nan,) * 3),
        ):
            claims.append(
                Claim(
                    f"1.headline_{stage}.{arch}",
                    f"{A}: {a} > {b} on the mean of the SQuADQA and HotpotQA Avg (Table 4); abstract: +{printed}%",
                    greater(q(a, *qa_avg), q(b, *qa_avg)),
                )
            )
        for fam in ("S", "MK", "MQ", "MV"):
            exception = "; paper exception: DeltaNet S 99.9 vs 100.0" if (arch, fam) == ("deltanet", "S") else ""
            claims.append(
                Claim(
                    f"2.niah_refine_gt_sft.{fam}.{arch}",
                    f"{A}: REFINE mid-training > SFT on {fam}-NIAH Avg (Table 3{exception})",
                    greater(*(cell("table3", (arch, r), (fam, "Avg")) for r in ("+ REFINE MidTr", "+ SFT MidTr"))),
                )
            )
        claims.append(
            Claim(
                f"2.niah_mk_refine_gt_base.{arch}",
                f"{A}: REFINE mid-training > no mid-training on MK-NIAH Avg (Table 3; text: DeltaNet +23.5%)",
                greater(*(cell("table3", (arch, r), ("MK", "Avg")) for r in ("+ REFINE MidTr", "base"))),
            )
        )
        claims.append(
            Claim(
                f"3.hotpot_mid_refine_gt_base.{arch}",
                f"{A}: REFINE mid-training > no mid-training on HotpotQA Avg (Table 4; text: DeltaNet +73.1%)",
                greater(q("mid-refine", ("HotpotQA", "Avg")), q("base", ("HotpotQA", "Avg"))),
            )
        )
        for col in qa_avg:
            claims.append(
                Claim(
                    f"3.qa_mid_refine_gt_sft.{col[0]}.{arch}",
                    f"{A}: REFINE mid-training > SFT on {col[0]} Avg (Table 4)",
                    greater(q("mid-refine", col), q("mid-sft", col)),
                )
            )
            claims.append(
                Claim(
                    f"5.ttt_refine_gt_sft.{col[0]}.{arch}",
                    f"{A}: REFINE TTT > SFT TTT on {col[0]} Avg (Table 4)",
                    greater(q("ttt-refine", col), q("ttt-sft", col)),
                )
            )
        for a, b in (("post-nested_refine", "post-nested_sft"), ("post-nested_sft", "post-sft")):
            claims.append(
                Claim(
                    f"4.{a.removeprefix('post-')}_gt_{b.removeprefix('post-')}.{arch}",
                    f"{A}: post-training {a} > {b} on SQuADQA Avg (Table 4)",
                    greater(q(a, ("SQuADQA", "Avg")), q(b, ("SQuADQA", "Avg"))),
                )
            )
        claims += [
            Claim(
                f"5.ttt_refine_gt_sft.LongBench.{arch}",
                f"{A}: REFINE TTT > SFT TTT on LongBench Avg (Table 5; paper wins 9/12 LaCT, 8/12 DeltaNet)",
                greater(lb("ttt-refine"), lb("ttt-sft"), ("table5", (arch, *t5["ttt-refine"]), (arch, *t5["ttt-sft"]))),
            ),
            Claim(
                f"6.longbench_mid_refine_gt_sft.{arch}",
                f"{A}: REFINE mid-training > SFT on LongBench Avg (Table 5; paper wins 12/12 LaCT, 11/12 DeltaNet)",
                greater(lb("mid-refine"), lb("mid-sft"), ("table5", (arch, *t5["mid-refine"]), (arch, *t5["mid-sft"]))),
            ),
            Claim(
                f"7.reward_cosine_gt_binary.{arch}",
                f"{A}: cosine reward > binary in mid-training (Table 6)",
                greater(*(cell("table6", (arch,), ("Reward", k)) for k in ("R^φ (cos)", "R^binary"))),
            ),
            Claim(
                f"7.selection_entropy_best.{arch}",
                f"{A}: entropy-weighted selection beats uniform, argmax and argmin (Table 7)",
                best_of(
                    "Entropy-weighted",
                    {
                        k: cell("table7", (arch,), ("Selection", k))
                        for k in ("Uniform", "argmax H", "argmin H", "Entropy-weighted")
                    },
                ),
            ),
            Claim(
                f"7.rollout_k5_best.{arch}",
                f"{A}: rollout length k=5 is best of 1/3/5/7 (Fig. 5)",
                best_of("k=5", {f"k={k}": cell("fig5", (arch,), ("k", f"k={k}")) for k in (1, 3, 5, 7)}),
            ),
            Claim(
                f"7.chunks_increasing.{arch}",
                f"{A}: more chunks c (2/4/6/8) is better (Fig. 5)",
                increasing({f"c={c}": cell("fig5", (arch,), ("c", f"c={c}")) for c in (2, 4, 6, 8)}),
            ),
            Claim(
                f"7.ttt_binary_reward_best.{arch}",
                f"{A}: binary reward is best for TTT (Table E.2)",
                best_of(
                    "REFINE R^binary",
                    {k: cell("tableE2", (arch,), ("TTT", k)) for k in ("none", "SFT", "REFINE R^φ", "REFINE R^binary")},
                ),
            ),
            Claim(
                f"8.no_forgetting.{arch}",
                f"{A}: REFINE mid-training keeps the short-context average within "
                f"{FORGETTING_TOLERANCE} points of the base model (Table E.1; {len(SHORT_TASKS)} acc tasks, "
                f"offline their {len(OFFLINE_ACCURACY)} stand-ins)",
                no_forgetting(arch),
            ),
        ]
    return claims


def _gain(metrics: pd.DataFrame, arch: str, method: str, column: str, sign: int) -> pd.Series:
    """Per-seed change of a validation metric from the first to the last step (x sign), in points."""
    val = metrics[
        (metrics["arch"] == arch)
        & (metrics["stage"] == "mid")
        & (metrics["method"] == method)
        & (metrics["split"] == "val")
    ]
    if column not in val or val[column].dropna().empty:
        return pd.Series(dtype=float)
    scale = 100.0 if column == "ntp_acc" and val[column].max() <= 1 else 1.0
    ends = val.dropna(subset=[column]).sort_values("step").groupby("seed")[column].agg(["first", "last"])
    return sign * scale * (ends["last"] - ends["first"])


def metric_claims(metrics: pd.DataFrame, archs: tuple[str, ...]) -> list[Claim]:
    """Claim 9 (Fig. 4 / E.1): REFINE's validation accuracy gain / loss drop over mid-training beats SFT's."""
    notes = figure_notes()
    claims = []
    for arch in archs:
        for column, sign, what, fig in (
            ("ntp_acc", 1, "sampled-NTP accuracy gain", "fig4"),
            ("loss", -1, "validation loss drop", "figE1"),
        ):
            a = _gain(metrics, arch, "refine", column, sign)
            b = _gain(metrics, arch, "sft", column, sign)
            claims.append(
                Claim(
                    f"9.{column}_refine_gt_sft.{arch}",
                    f"{ARCH_NAMES.get(arch, arch)}: REFINE's {what} from first to last step exceeds "
                    f"SFT's (paper: {notes[fig]})",
                    greater(Given(a), Given(b), relative=False),
                )
            )
    return claims


def run_claims(tables: Tables, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: verdict (``status``) and why, ours (diff, 95% interval and how it was made, relative
    %, seeds), the paper's effect and point-estimate status, detail."""
    archs = tuple(dict.fromkeys(k[0] for t in tables.values() for k in t.index)) or ("lact", "deltanet")
    paper = {name: t.as_paper() for name, t in tables.items()}
    rows = []
    claims = sorted(table_claims(archs) + metric_claims(metrics, archs), key=lambda c: int(c.name.split(".")[0]))
    for claim in claims:
        outcome = claim.evaluate(tables)
        effect = outcome.effect
        status, why = decide(outcome)
        is_metric = claim.name.startswith("9.")
        theirs = None if is_metric else claim.evaluate(paper)
        rows.append(
            {
                "claim": claim.name,
                "status": status,
                "why": why,
                "statement": claim.statement,
                "diff": effect.diff if effect else math.nan,
                "ci95_lo": effect.lo if effect else math.nan,
                "ci95_hi": effect.hi if effect else math.nan,
                "interval": effect.interval if effect else "",
                "rel_pct": effect.rel if effect else math.nan,
                "rel_ci95_half": effect.rel_half if effect else math.nan,
                "n_seeds": effect.n if effect else 0,
                "ci_excludes_0": effect.excludes_zero if effect else False,
                "paper_status": point_status(theirs) if theirs else "",
                "paper_diff": theirs.effect.diff if theirs and theirs.effect else math.nan,
                "paper_rel_pct": theirs.effect.rel if theirs and theirs.effect else math.nan,
                "detail": outcome.detail,
            }
        )
    return pd.DataFrame(rows)


def to_markdown(claims: pd.DataFrame) -> str:
    """Claims table: verdict and why, our effect with its interval, the paper's effect."""

    def fmt(x: float, suffix: str = "") -> str:
        return "" if math.isnan(x) else f"{x:+.2f}{suffix}"

    lines = [
        "| claim | verdict | ours: diff [95% CI] | ours: rel | why | paper: diff | paper: rel | paper status "
        "| detail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in claims.itertuples():
        ci = "" if math.isnan(r.ci95_lo) else f" [{r.ci95_lo:+.2f}, {r.ci95_hi:+.2f}]"
        lines.append(
            f"| {r.claim} | {r.status} | {fmt(r.diff)}{ci} | {fmt(r.rel_pct, '%')} | {r.why} | "
            f"{fmt(r.paper_diff)} | {fmt(r.paper_rel_pct, '%')} | {r.paper_status} | {r.detail} |"
        )
    counts = claims["status"].value_counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in VERDICTS if counts.get(s, 0))
    rules = (
        "PASS / FAIL: the 95% interval lies above / below 0 (paired over seeds; one seed: from the test samples); "
        "INCONCLUSIVE: it includes 0 or there is none; FLOOR / CEILING: every compared value is 0 / 100, so this "
        "replica cannot decide (not: the paper is wrong); NOT MEASURABLE: the cells test the pipeline only at this "
        "scale; NOT RUN: no records. The paper's status is its point estimate."
    )
    statements = [f"* `{r.claim}`: {r.statement}" for r in claims.itertuples()]
    return "\n".join(["### Claims (spec section 9)", "", summary, "", rules, "", *lines, "", *statements]) + "\n"
