"""The paper's figures from training metrics and built tables (matplotlib Agg; PNG + PDF each).

Every figure is always written; a panel without data says so, so workflow outputs stay fixed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from refine.atomic import atomic_path

from .claims import cell
from .published import figure_notes
from .records import ARCH_NAMES, ARCHS
from .stats import CI_RULE, compare
from .tables import Table

# Okabe-Ito (colour-blind safe)
COLORS = {"sft": "#E69F00", "refine": "#0072B2", "lact": "#009E73", "deltanet": "#CC79A7", "paper": "#000000"}
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442"]
METHOD_NAMES = {"sft": "SFT", "refine": "REFINE"}
# Per series a marker and a line style as well as a colour, so series that coincide (both methods start from
# the same checkpoint) stay visible: filled vs hollow markers of different shapes, solid vs dashed lines.
STYLES = [
    {"marker": "o", "linestyle": "-", "markersize": 5},
    {"marker": "s", "linestyle": "--", "markersize": 7, "markerfacecolor": "none"},
    {"marker": "^", "linestyle": "-.", "markersize": 6},
    {"marker": "D", "linestyle": ":", "markersize": 6, "markerfacecolor": "none"},
    {"marker": "v", "linestyle": (0, (5, 1)), "markersize": 6},
    {"marker": "P", "linestyle": (0, (3, 1, 1, 1)), "markersize": 6},
    {"marker": "X", "linestyle": (0, (1, 1)), "markersize": 6},
]
METHOD_STYLES = {"refine": STYLES[0], "sft": STYLES[1]}
plt.rcParams.update(
    {
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 150,
    }
)


def save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    """``name.png`` and ``name.pdf`` under ``out``, each written to a temporary file and renamed."""
    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight")
    plt.close(fig)
    return paths


def _archs(frame: pd.DataFrame) -> list[str]:
    present = set(frame["arch"]) if "arch" in frame and len(frame) else set()
    return [a for a in ARCHS if a in present] + sorted(present - set(ARCHS)) or list(ARCHS)


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="0.4")


def _band(ax: plt.Axes, runs: pd.DataFrame, column: str, scale: float, color: str, label: str, style: dict) -> bool:
    """Mean over seeds vs step (``style``: marker and line style) with a min/max band; False when ``runs``
    has no ``column`` values."""
    if column not in runs or runs[column].dropna().empty:
        return False
    wide = runs.dropna(subset=[column]).pivot_table(index="step", columns="seed", values=column) * scale
    ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=color, alpha=0.2, linewidth=0)
    n = wide.shape[1]
    ax.plot(
        wide.index,
        wide.mean(axis=1),
        color=color,
        label=f"{label} (mean, min-max of {n} seed{'s' * (n > 1)})",
        **style,
    )
    return True


def _mid(metrics: pd.DataFrame, arch: str, split: str) -> pd.DataFrame:
    if metrics.empty:
        return metrics
    return metrics[(metrics["arch"] == arch) & (metrics["stage"] == "mid") & (metrics["split"] == split)]


def validation_curves(metrics: pd.DataFrame, column: str, ylabel: str, title: str) -> plt.Figure:
    """Fig. 4 (``ntp_acc``, shown in %) / Fig. E.1 (``loss``): SFT vs REFINE mid-training, one panel per arch."""
    archs = _archs(metrics)
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.4), squeeze=False, layout="constrained")
    for ax, arch in zip(axes[0], archs):
        val = _mid(metrics, arch, "val")
        scale = 100.0 if column == "ntp_acc" and len(val) and val[column].max() <= 1 else 1.0
        drawn = [
            _band(ax, val[val["method"] == m], column, scale, COLORS[m], METHOD_NAMES[m], METHOD_STYLES[m])
            for m in ("sft", "refine")
        ]
        if any(drawn):
            ax.legend(fontsize=8)
        else:
            _empty(ax, "validation metrics")
        ax.set(title=ARCH_NAMES.get(arch, arch), xlabel="mid-training step", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


def _variant_label(method: str, rows: pd.DataFrame) -> str:
    """An ablation's name; the plain REFINE run is labelled with the k and c its metrics rows record."""
    if method != "refine":
        return method.removeprefix("refine_")
    settings = [rows[f"refine_{x}"].dropna().unique() if f"refine_{x}" in rows else () for x in ("k", "c")]
    if all(len(v) == 1 for v in settings):
        return f"k={int(settings[0][0])}, c={int(settings[1][0])} (default)"
    return "refine (default)"


def reward_curves(metrics: pd.DataFrame, reward: str = "cosine") -> plt.Figure:
    """Fig. E.3: mean and std of the rollout reward per step for every REFINE mid-training variant (one colour,
    marker and line style per variant across panels; one legend below)."""
    archs = _archs(metrics)
    fig, axes = plt.subplots(
        2, len(archs), figsize=(4.2 * len(archs), 5.6), squeeze=False, sharex="col", layout="constrained"
    )
    train = metrics[(metrics["stage"] == "mid") & (metrics["split"] == "train")] if len(metrics) else metrics
    methods = sorted(m for m in train["method"].unique() if m.startswith("refine")) if len(train) else []
    for j, arch in enumerate(archs):
        runs = _mid(metrics, arch, "train")
        for i, stat in enumerate(("mean", "std")):
            ax, column = axes[i, j], f"reward_{reward}_{stat}"
            drawn = [
                _band(
                    ax,
                    runs[runs["method"] == m],
                    column,
                    1.0,
                    CYCLE[k % len(CYCLE)],
                    _variant_label(m, runs[runs["method"] == m]),
                    STYLES[k % len(STYLES)],
                )  # fmt: skip
                for k, m in enumerate(methods)
            ]
            if not any(drawn):
                _empty(ax, f"{column} records")
            ax.set(ylabel=f"reward {stat} ({reward}, unitless)", title=ARCH_NAMES.get(arch, arch) if i == 0 else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, j].set_xlabel("mid-training step")
    legend = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=min(3, len(legend)), fontsize=8)
    fig.suptitle(f"Fig. E.3: {reward} reward of REFINE rollouts during mid-training")
    return fig


def ablation_kc(table: Table) -> plt.Figure:
    """Fig. 5: family average vs rollout length k and chunks c, ours (95% CI) beside the paper's points."""
    mean, half, paper = table.mean, table.half, table.paper
    archs = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), layout="constrained")
    for ax, group, name in zip(axes, ("k", "c"), ("rollout length k (tokens)", "chunks per sequence c")):
        cols = [c for c in table.columns if c[0] == group]
        x = [int(c[1].split("=")[1]) for c in cols]
        ours = False
        for offset, arch in zip(np.linspace(-0.025, 0.025, len(archs)) * (x[-1] - x[0]), archs):
            color, label = COLORS.get(arch, "0.3"), ARCH_NAMES.get(arch, arch)
            y, err, p = (frame.loc[[arch], cols].to_numpy(float).ravel() for frame in (mean, half, paper))
            if not np.isnan(y).all():
                ours = True
                ax.errorbar(
                    np.array(x) + offset,
                    y,
                    yerr=np.nan_to_num(err),
                    color=color,
                    marker="o",
                    capsize=3,
                    label=f"{label} (ours)",
                )
            ax.plot(
                np.array(x)[~np.isnan(p)],
                p[~np.isnan(p)],
                color=color,
                marker="D",
                markerfacecolor="none",
                linestyle=":",
                label=f"{label} (paper)",
            )
        if not ours:
            _empty(ax, "ablation records (paper points only)")
        ax.set(xlabel=name, xticks=x, ylabel=table.spec.unit, title=f"{group} ablation (mid-training)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(f"Fig. 5: rollout length and number of chunks (ours: mean, {CI_RULE})")
    return fig


# (label, table, row a, row b, columns): REFINE minus SFT at each stage and evaluation family; NIAH per variant, as
# a run may evaluate only some of them (the default: S and MK) and each is a claim of its own
SUMMARY = (
    *(
        (f"mid · {f}-NIAH", "table3", ("+ REFINE MidTr",), ("+ SFT MidTr",), [(f, "Avg")])
        for f in ("S", "MK", "MQ", "MV")
    ),
    ("mid · RULER QA", "table4", ("REFINE", "–", "–"), ("SFT", "–", "–"), [("SQuADQA", "Avg"), ("HotpotQA", "Avg")]),
    ("mid · LongBench", "table5", ("REFINE", "–"), ("SFT", "–"), [("LongBench", "Avg")]),
    (
        "post · RULER QA (nested)",
        "table4",
        ("REFINE", "Nested REFINE", "–"),
        ("REFINE", "Nested SFT", "–"),
        [("SQuADQA", "Avg"), ("HotpotQA", "Avg")],
    ),
    (
        "TTT · RULER QA",
        "table4",
        ("REFINE", "Nested REFINE", "REFINE"),
        ("REFINE", "Nested REFINE", "SFT"),
        [("SQuADQA", "Avg"), ("HotpotQA", "Avg")],
    ),
    ("TTT · LongBench", "table5", ("REFINE", "REFINE"), ("REFINE", "SFT"), [("LongBench", "Avg")]),
)


def summary_effects(tables: dict[str, Table]) -> pd.DataFrame:
    """REFINE minus SFT (points, 95% CI) per arch, stage and family, ours and the paper's; ``pipeline_only``: the
    family tests the pipeline only at this scale (config report.pipeline_only)."""
    paper = {name: t.as_paper() for name, t in tables.items()}
    archs = list(dict.fromkeys(k[0] for t in tables.values() for k in t.index))
    rows = []
    for arch in archs:
        for label, name, a, b, cols in SUMMARY:
            ours, theirs = (
                compare(cell(name, (arch, *a), *cols)(src), cell(name, (arch, *b), *cols)(src))
                for src in (tables, paper)
            )
            rows.append(
                {
                    "arch": arch,
                    "comparison": label,
                    "diff": ours.diff if ours else np.nan,
                    "ci95_half": ours.half if ours else np.nan,
                    "n_seeds": ours.n if ours else 0,
                    "paper_diff": theirs.diff if theirs else np.nan,
                    "pipeline_only": bool(tables[name].pipeline_only),
                }
            )
    return pd.DataFrame(rows)


def summary(tables: dict[str, Table]) -> plt.Figure:
    """REFINE minus SFT per evaluation family and stage: ours (95% CI) and the paper's, one panel per arch."""
    effects = summary_effects(tables)
    archs = list(dict.fromkeys(effects["arch"]))
    labels = [s[0] for s in SUMMARY]
    fig, axes = plt.subplots(
        1,
        len(archs),
        figsize=(4.6 * len(archs), 1.2 + 0.32 * len(labels)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    y = np.arange(len(labels))[::-1]
    for ax, arch in zip(axes[0], archs):
        e = effects[effects["arch"] == arch].set_index("comparison").loc[labels]
        ax.axvline(0, color="0.5", linewidth=0.8)
        pipeline = e["pipeline_only"].to_numpy(bool)
        for rows, color, label in (
            (~pipeline, COLORS["refine"], f"ours (mean, {CI_RULE})"),
            (pipeline, "0.6", None),
        ):
            ax.errorbar(
                e["diff"][rows],
                y[rows] + 0.12,
                xerr=np.nan_to_num(e["ci95_half"][rows].to_numpy(float)),
                fmt="o",
                color=color,
                capsize=3,
                label=label,
            )
        ax.plot(e["paper_diff"], y - 0.12, "D", markerfacecolor="none", color=COLORS["paper"], label="paper")
        for yi, d, only in zip(y, e["diff"], pipeline):
            if np.isnan(d):
                ax.text(0, yi + 0.12, " not run", va="center", fontsize=7, color="0.4")
            elif only:
                ax.text(d, yi + 0.42, "pipeline test only", ha="center", va="center", fontsize=7, color="0.4")
        ax.set(yticks=y, yticklabels=labels, xlabel="REFINE − SFT (score points)", title=ARCH_NAMES.get(arch, arch))
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("REFINE minus SFT by stage and evaluation family")
    return fig


def captions() -> dict[str, str]:
    """What each figure shows and what to look for, with what the paper's version shows."""
    notes = figure_notes()
    lines = "REFINE: blue, solid line, filled circles; SFT: orange, dashed line, hollow squares"
    return {
        "fig4_val_ntp_acc": "Validation sampled next-token accuracy during mid-training, one panel per architecture "
        f"({lines}; bands: min-max over seeds). Look for REFINE ending above its step-0 value and above SFT; both "
        f"start from the same checkpoint, so the first points coincide. Paper: {notes['fig4']}.",
        "figE1_val_loss": f"Validation loss during mid-training ({lines}). Look for REFINE's loss falling faster "
        f"than SFT's. Paper: {notes['figE1']}.",
        "figE3_reward": "Mean (top) and standard deviation (bottom) of the cosine reward of REFINE's rollouts per "
        "step, one line style per mid-training variant. Look for a stable mean and the ordering across rollout "
        f"lengths k. Paper: {notes['figE3']}.",
        "fig5_k_c": "Family average against rollout length k (left) and chunks c (right): ours (solid, "
        f"{CI_RULE}) beside the paper's points (dotted, hollow diamonds). Look for k=5 being best and the score "
        "rising with c. Without ablation records only the paper's points are drawn.",
        "summary_refine_minus_sft": "REFINE minus SFT per training stage and evaluation family (points of score): "
        f"ours (filled circles, {CI_RULE}) beside the paper (hollow diamonds). Look for ours on the "
        "paper's side of zero; 'not run' marks comparisons without records, 'pipeline test only' (grey) the families "
        "that cannot measure the method at this scale (config report.pipeline_only).",
    }


def write_figures(tables: dict[str, Table], metrics: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure (PNG + PDF) under ``out``; returns the paths."""
    figures = {
        "fig4_val_ntp_acc": validation_curves(
            metrics, "ntp_acc", "val sampled-NTP accuracy (%)", "Fig. 4: validation next-token accuracy (sampled)"
        ),
        "figE1_val_loss": validation_curves(metrics, "loss", "val NTP loss (nats/token)", "Fig. E.1: validation loss"),
        "figE3_reward": reward_curves(metrics),
        "fig5_k_c": ablation_kc(tables["fig5"]),
        "summary_refine_minus_sft": summary(tables),
    }
    return [p for name, fig in figures.items() for p in save(fig, out, name)]
