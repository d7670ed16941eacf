"""Intervals of cells and of differences between cells (docs/design.md, "Claim statistics").

A cell holds one value per training seed and, where its records carry per-example scores, the sampling
variance of each value. Two sources of uncertainty, two intervals:

* over seeds (>= 2 seeds): the 95% Student-t interval of the per-seed values (of a difference: of the per-seed
  differences, paired by seed). Each seed's value carries its own sampling noise, so this interval covers
  both. A t-interval rather than a bootstrap: with 3 seeds a bootstrap has 10 distinct resamples and its
  percentile interval is far too narrow; the t-interval is exact for normal per-seed values and needs no RNG.
* from the samples (1 seed): the normal interval 1.96 * sqrt(var / n) of the mean over the test examples,
  the only replication a single trained model has; it says whether these models differ on this test
  distribution, not whether their training methods do. A difference is paired by example when both sides
  scored the same examples (the variance of the per-example differences); otherwise the two sides' variances
  add (independent samples: conservative, since two models' scores on the same prompts correlate positively).
* seeds against one model (e.g. the base model they all start from): both, their half-widths added in
  quadrature (``compare``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

#: how a figure names these intervals (a table footnote: `refine.report.render`)
CI_RULE = "95% CI over seeds; one seed: from its test examples"

_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
Z975 = 1.959964


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile (table up to 30 degrees of freedom, Cornish-Fisher beyond)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def half_width(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean; NaN for fewer than two values."""
    n = len(values)
    return t975(n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan


def example_scores(examples: Sequence[dict], score: float) -> dict[int, float] | None:
    """A record's per-example scores in score points by example ``index``: each example's ``score`` (0-1) or
    lm-eval ``value``, x100. None unless their mean x100 is the record's ``score`` (e.g. a perplexity is not a
    mean of per-document values), there are at least two, and their indices are distinct."""
    values = [e.get("score", e.get("value")) for e in examples or ()]
    if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    points = {int(e.get("index", i)): 100 * float(v) for i, (e, v) in enumerate(zip(examples, values))}
    mean = sum(points.values()) / len(points)
    return points if len(points) == len(values) and math.isclose(mean, score, rel_tol=1e-6, abs_tol=1e-6) else None


Units = dict[tuple, tuple[float, pd.Series]]  # the examples behind one value: unit -> (weight, score by index)


def paired_var(a: Units | None, b: Units | None) -> float:
    """Sampling variance of ``value(a) - value(b)`` from per-example differences, where ``a`` and ``b`` are the
    same weighted means over the same examples (value = sum over units of weight x mean score); NaN if not."""
    if not isinstance(a, dict) or not isinstance(b, dict) or a.keys() != b.keys():
        return math.nan
    var = 0.0
    for unit, (weight, scores) in a.items():
        other_weight, other = b[unit]
        if not math.isclose(weight, other_weight) or set(scores.index) != set(other.index):
            return math.nan
        d = scores - other.reindex(scores.index)
        var += weight**2 * d.var(ddof=1) / len(d)
    return var


def seed_mean(examples: pd.Series) -> Units | None:
    """The examples of the mean over seeds of one cell (``Units`` per seed; None unless every seed has the same
    units, weights and example indices)."""
    if not len(examples) or not all(isinstance(e, dict) for e in examples):
        return None
    first = examples.iloc[0]
    if any(e.keys() != first.keys() for e in examples):
        return None
    out = {}
    for unit, (weight, scores) in first.items():
        same = [e[unit] for e in examples]
        if any(not math.isclose(w, weight) or set(s.index) != set(scores.index) for w, s in same):
            return None
        out[unit] = (weight, sum(s.reindex(scores.index) for _, s in same) / len(same))
    return out


def as_cell(values: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Per-seed ``value``, sampling ``var`` (NaN: unknown) and ``examples`` (``Units`` or None) of a cell; a Series
    is values of unknown variance, a frame without ``examples`` one without them."""
    frame = values if isinstance(values, pd.DataFrame) else pd.DataFrame({"value": values, "var": math.nan})
    if "examples" not in frame:
        frame = frame.assign(examples=pd.Series([None] * len(frame), index=frame.index, dtype=object))
    return frame.dropna(subset=["value"])


def cell_half(cell: pd.Series | pd.DataFrame) -> float:
    """95% half-width of a cell's mean: over seeds with >= 2 seeds, else from its samples (NaN if unknown)."""
    cell = as_cell(cell)
    if len(cell) > 1:
        return half_width(cell["value"])
    return Z975 * math.sqrt(cell["var"].iloc[0]) if len(cell) == 1 else math.nan


@dataclass(frozen=True)
class Effect:
    """``a - b`` (points) with its 95% interval (``interval``: how it was made), and the same relative to
    ``mean(b)`` in percent."""

    diff: float
    half: float
    base: float
    n: int  # seeds behind the difference
    interval: str = ""

    @property
    def lo(self) -> float:
        return self.diff - self.half

    @property
    def hi(self) -> float:
        return self.diff + self.half

    @property
    def rel(self) -> float:
        return 100 * self.diff / self.base if self.base else math.nan

    @property
    def rel_half(self) -> float:
        return 100 * self.half / abs(self.base) if self.base else math.nan

    @property
    def excludes_zero(self) -> bool:
        return bool(self.half < abs(self.diff))  # False when the interval is NaN


def compare(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame) -> Effect | None:
    """Effect of ``a`` over ``b`` (cells indexed by seed, ``as_cell``); ``None`` if either is empty.

    * the same >= 2 seeds on both sides: t-interval of the per-seed differences (paired by seed);
    * one side a single model (e.g. the base model every seed starts from), the other >= 2 seeds: that
      model's value is subtracted from every seed; the half-widths of two independent parts add in quadrature:
      the t-interval of those per-seed differences (seed-to-seed variation) and the sampling interval of the
      test examples all of them share: of the per-example differences between the seeds' mean and that model
      where both scored the same examples (``seed_mean``, ``paired_var``), else of that model's own score;
    * one seed on each side: the sampling interval of the difference, paired by example where both sides
      scored the same examples (``paired_var``);
    * otherwise (different seed sets): Welch's interval, unpaired.
    The relative interval treats ``mean(b)`` as fixed."""
    a, b = as_cell(a), as_cell(b)
    if a.empty or b.empty:
        return None
    base = b["value"].mean()
    if len(a) == len(b) == 1:
        diff = a["value"].iloc[0] - b["value"].iloc[0]
        var = paired_var(a["examples"].iloc[0], b["examples"].iloc[0])
        if not math.isnan(var):
            return Effect(diff, Z975 * math.sqrt(var), base, 1, "samples paired by example, 1 seed")
        return Effect(diff, Z975 * math.sqrt(a["var"].iloc[0] + b["var"].iloc[0]), base, 1, "samples, 1 seed")
    if a.index.equals(b.index) or set(a.index) == set(b.index):
        d = a["value"] - b["value"].reindex(a.index)
        return Effect(d.mean(), half_width(d), base, len(d), f"t over {len(d)} paired seeds")
    if min(len(a), len(b)) == 1:
        many, one, sign = (a, b, 1) if len(b) == 1 else (b, a, -1)
        d = sign * (many["value"] - one["value"].iloc[0])
        how = f"t over {len(d)} seeds vs one model"
        extra = paired_var(seed_mean(many["examples"]), one["examples"].iloc[0])
        if math.isnan(extra):
            extra = one["var"].iloc[0]
        else:
            how += ", paired by example"
        seed_half = half_width(d)
        half = math.sqrt(seed_half**2 + (0 if math.isnan(extra) else Z975**2 * extra))
        return Effect(d.mean(), half, base, len(d), how)
    va, vb = a["value"].var(ddof=1) / len(a), b["value"].var(ddof=1) / len(b)
    half = math.nan
    if va + vb > 0:
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        half = t975(max(1, int(dof))) * math.sqrt(va + vb)
    diff = a["value"].mean() - base
    return Effect(diff, half, base, min(len(a), len(b)), f"Welch, {len(a)} vs {len(b)} seeds")
