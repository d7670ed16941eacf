"""Read evaluation records and training metrics into DataFrames with the keys the report selects on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from refine.data.longbench import TASK_KEYS

ARCHS = ("lact", "deltanet")
ARCH_NAMES = {"lact": "LaCT", "deltanet": "DeltaNet"}
LENGTHS = ("4K", "8K", "16K")
# Spec 7.4: which lm-eval task each Table 3 family is (S inferred, MK probable); override per call.
NIAH_FAMILIES = {"S": "niah_single_1", "MK": "niah_multikey_1", "MQ": "niah_multiquery", "MV": "niah_multivalue"}
QA_TASKS = {"squad": "SQuADQA", "hotpot": "HotpotQA"}
LONGBENCH = TASK_KEYS  # LongBench task name -> Table 5 column
SHORT_TASKS = {  # Table E.1 accuracy columns (family "short"); Avg = their mean (spec 7.6)
    "lambada_openai": "LMB acc",
    "piqa": "PIQA",
    "hellaswag": "Hella",
    "winogrande": "Wino",
    "arc_easy": "ARC-e",
    "arc_challenge": "ARC-c",
}

_MID = re.compile(r"^mid-(?P<method>[a-z0-9_]+)-s(?P<seed>\d+)$")
_POST = re.compile(r"^post-(?P<post_task>.+)-(?P<post_length>[^-]+)-(?P<method>[a-z0-9_]+)-s(?P<seed>\d+)$")


def qa_key(task: str) -> str | None:
    """``squad`` / ``hotpot`` for any RULER-QA task name that contains it."""
    return next((key for key in QA_TASKS if key in task.lower()), None)


def parse_model(name: str) -> dict:
    """Stage, method, seed (and post task/length) from a model name of docs/design.md."""
    if name == "base":
        return {"stage": "base", "method": "none", "seed": 0}
    for stage, pattern in (("mid", _MID), ("post", _POST)):
        if match := pattern.match(name):
            return {"stage": stage, **match.groupdict(), "seed": int(match["seed"])}
    raise ValueError(f"unrecognised model name {name!r} (docs/design.md: base, mid-..., post-...)")


def _task_key(family: str, task: str) -> str:
    if family == "qa":
        return qa_key(task) or task
    if family == "longbench":
        return LONGBENCH.get(task.removeprefix("longbench_"), task)
    if family == "short":
        return SHORT_TASKS.get(task, task)
    return task


def _own_task(row: pd.Series) -> bool:
    """A post-trained model counts only on the QA task and length it was trained for."""
    if row["stage"] != "post":
        return True
    lengths = {str(row["length"]), str(row["length_label"])}
    return qa_key(row["post_task"]) == row["task_key"] and str(row["post_length"]) in lengths


def normalize(records: pd.DataFrame) -> pd.DataFrame:
    """Add ``stage, method, seed, post_task, post_length, task_key, own_task`` from the record fields."""
    df = records.copy()
    parsed = pd.DataFrame([parse_model(m) for m in df["model"]], index=df.index)
    for column in ("stage", "method", "seed", "post_task", "post_length"):
        df[column] = parsed.get(column)
    df["seed"] = df["seed"].astype(int)
    df["ttt"] = df["ttt"].fillna("none") if "ttt" in df else "none"
    df["task_key"] = [_task_key(f, t) for f, t in zip(df["family"], df["task"])]
    df["own_task"] = df.apply(_own_task, axis=1) if len(df) else []
    return df


RECORD_COLUMNS = (
    "experiment",
    "arch",
    "model",
    "stage",
    "method",
    "seed",
    "family",
    "task",
    "length",
    "length_label",
    "ttt",
    "metric",
    "score",
    "n",
)


def records_frame(rows: list[dict]) -> pd.DataFrame:
    """Normalized DataFrame from record dicts (``examples`` dropped)."""
    frame = pd.DataFrame(
        [{k: v for k, v in r.items() if k != "examples"} for r in rows], columns=None if rows else list(RECORD_COLUMNS)
    )
    return normalize(frame)


def load_records(root: str | Path) -> pd.DataFrame:
    """Every record under ``root`` (an ``evals`` directory; ``refine.evaluate.records.read_records``), normalized."""
    from refine.evaluate.records import read_records

    return normalize(read_records(root))


def load_metrics(root: str | Path | None) -> pd.DataFrame:
    """Every ``{arch}/{model}/metrics.jsonl`` under ``root`` (a ``train`` directory; None: none), one row per
    line with the model's arch, stage, method and seed."""
    rows = []
    for path in sorted(Path(root).rglob("metrics.jsonl")) if root else []:
        parsed = parse_model(path.parent.name)
        for line in path.read_text().splitlines():
            if line.strip():
                rows.append(
                    {
                        "arch": path.parent.parent.name,
                        "model": path.parent.name,
                        "stage": parsed["stage"],
                        "method": parsed["method"],
                        "seed": parsed["seed"],
                        **json.loads(line),
                    }
                )
    return pd.DataFrame(rows, columns=None if rows else ["arch", "model", "stage", "method", "seed", "step", "split"])
