"""Means, 95% t-intervals over seeds, and paired/unpaired differences."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

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


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile (table up to 30 degrees of freedom, Cornish-Fisher beyond)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def half_width(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean; NaN for fewer than two values."""
    n = len(values)
    return t975(n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan


@dataclass(frozen=True)
class Effect:
    """``a - b`` (points) with its 95% interval, and the same relative to ``mean(b)`` in percent."""

    diff: float
    half: float
    base: float
    n: int

    @property
    def rel(self) -> float:
        return 100 * self.diff / self.base if self.base else math.nan

    @property
    def rel_half(self) -> float:
        return 100 * self.half / abs(self.base) if self.base else math.nan

    @property
    def excludes_zero(self) -> bool:
        return bool(self.half < abs(self.diff))  # False when the interval is NaN


def compare(a: pd.Series, b: pd.Series) -> Effect | None:
    """Effect of ``a`` over ``b`` (series indexed by seed). Paired on common seeds; a single ``b`` value (e.g.
    the base model) is subtracted from every ``a``; otherwise unpaired (Welch). ``None`` if either is empty.
    The relative interval treats ``mean(b)`` as fixed."""
    a, b = a.dropna(), b.dropna()
    if a.empty or b.empty:
        return None
    common = a.index.intersection(b.index)
    if len(b) == 1 or len(common) == len(a) == len(b):
        d = a - b.iloc[0] if len(b) == 1 else a[common] - b[common]
        return Effect(d.mean(), half_width(d), b.mean(), len(d))
    half = math.nan
    if len(a) > 1:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        if va + vb > 0:
            dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
            half = t975(max(1, int(dof))) * math.sqrt(va + vb)
    return Effect(a.mean() - b.mean(), half, b.mean(), min(len(a), len(b)))
