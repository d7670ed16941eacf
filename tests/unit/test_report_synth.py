"""Synthetic records and metrics for the report tests: the published numbers plus symmetric seed noise, so
the mean over seeds of every cell equals the paper's value."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from refine.commands import report
from refine.experiment import parse_model
from refine.report.published import published
from refine.report.records import LONGBENCH, SHORT_TASKS, records_frame
from refine.report.tables import specs

SEEDS = (0, 1, 2)
NOISE = (-0.5, 0.0, 0.5)  # per seed: mean 0, sd 0.5
TINY = {"4K": 1024, "8K": 2048, "16K": 4096}
_TASK = {
    "qa": {"squad": "squadqa", "hotpot": "hotpotqa"},
    "longbench": {v: k for k, v in LONGBENCH.items()},
    "short": {v: k for k, v in SHORT_TASKS.items()},
}


def _model(where: dict, task: str, label: str, seed: int) -> str:
    if where["stage"] == "base":
        return "base"
    if where["stage"] == "mid":
        return f"mid-{where['method']}-s{seed}"
    return f"post-{task}-{TINY[label]}-{where['method']}-s{seed}"


def record(arch: str, where: dict, seed: int, score: float, lengths: dict[str, int] = TINY) -> dict:
    """One record for a cell filter of ``tables.specs`` (task/length defaulted where the filter has none)."""
    family = where["family"]
    key = where.get("task_key", where.get("task"))
    task = _TASK.get(family, {}).get(key, key)
    label = where.get("length_label", "16K")
    return {
        "schema": 1,
        "experiment": "synthetic",
        "arch": arch,
        **parse_model(_model(where, task, label, seed)).fields(),
        "family": family,
        "task": task,
        "length": lengths[label],
        "length_label": label,
        "ttt": where["ttt"],
        "metric": "score",
        "score": score,
        "n": 40,
        "examples": [],
    }


def paper_records(
    tables=("table3", "table4", "table5", "table6", "table7", "tableE2", "tableE1", "fig5"),
    seeds=SEEDS,
    noise=NOISE,
    lengths: dict[str, int] = TINY,
    rng: int | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
) -> list[dict]:
    """Records whose per-cell seed mean is the paper's number (with ``rng``: plus independent normal noise
    of sd 1 per record). Family-average cells (ablations) become one record per member task at the printed
    value, unless that run already has records. ``extra`` overrides published frames (e.g. fig5 points)."""
    gen = np.random.default_rng(rng)
    out, seen = [], set()
    for name in tables:
        spec, paper = specs()[name], (extra or {}).get(name, published(name))
        for arch, row, col in itertools.product(("lact", "deltanet"), spec.rows, spec.cols):
            if (col.group, col.label) not in paper.columns:  # a column the paper does not print
                continue
            value = paper.loc[(arch, *row.label), (col.group, col.label)]
            where = {**row.where, **col.where}
            multi = {k: v for k, v in where.items() if isinstance(v, tuple)}
            if np.isnan(value) or (multi and col.label == "Avg"):
                continue
            run = (arch, where["stage"], where.get("method"), where["ttt"], where["family"])
            if multi and run in seen:
                continue
            seen.add(run)
            for combo in itertools.product(*multi.values()):
                cell = {**where, **dict(zip(multi, combo))}
                base = where["stage"] == "base"
                for seed, eps in zip(seeds[:1] if base else seeds, (0.0,) if base else noise):
                    eps = eps if rng is None else gen.normal(0, 1)
                    out.append(record(arch, cell, seed, value + eps, lengths))
    return out


def write_records(rows: list[dict], root: Path) -> Path:
    """Write records in the design.md layout under ``root`` (an ``evals`` directory)."""
    for r in rows:
        path = root / r["arch"] / r["model"] / r["family"] / f"{r['task']}_{r['length']}_ttt-{r['ttt']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return root


def write_metrics(root: Path, steps: int = 100, every: int = 10, refine_gain: float = 0.006, rng: int = 0) -> Path:
    """metrics.jsonl for mid-sft and mid-refine (3 seeds, 2 archs) shaped like Fig. 4 / E.1 / E.3."""
    gen = np.random.default_rng(rng)
    for arch, acc0, loss0 in (("lact", 0.298, 3.20), ("deltanet", 0.328, 3.03)):
        for method, seed in itertools.product(("sft", "refine"), SEEDS):
            gain = refine_gain if method == "refine" else 0.0
            lines = []
            run = {"arch": arch, **parse_model(f"mid-{method}-s{seed}").fields()}
            for step in range(0, steps + 1, every):
                frac = step / steps
                lines.append(
                    {
                        **run,
                        "step": step,
                        "split": "val",
                        "ntp_acc": acc0 + gain * frac + gen.normal(0, 4e-4),
                        "loss": loss0 - 8 * gain * frac + gen.normal(0, 2e-3),
                    }
                )
                if method == "refine" and step:
                    lines.append(
                        {
                            **run,
                            "step": step,
                            "split": "train",
                            "loss": loss0 + 0.05,
                            "reward_cosine_mean": 0.57 + gen.normal(0, 0.01),
                            "reward_cosine_std": (0.25 if arch == "lact" else 0.19) + gen.normal(0, 0.005),
                            "tokens_per_s": 6000.0,
                        }
                    )
            path = root / arch / f"mid-{method}-s{seed}" / "metrics.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def paper_frame(**kw) -> pd.DataFrame:
    return records_frame(paper_records(**kw))


def test_synthetic_records_round_trip(tmp_path):
    from refine.report.records import load_records

    rows = paper_records(tables=("table4",))
    frame = load_records(write_records(rows, tmp_path))
    assert len(frame) == len(rows) and frame["own_task"].all()
    assert set(frame["stage"]) == {"base", "mid", "post"}


def run_report(*argv):
    """`refine report <argv>` in-process (exceptions propagate); returns the command's result."""
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.func(args)
