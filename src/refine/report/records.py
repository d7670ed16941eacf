"""Read evaluation records and training metrics into DataFrames with the keys the report selects on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from refine.data.longbench import TASK_KEYS
from refine.experiment import BASE, ModelId

from .stats import example_scores

ARCHS = ("lact", "deltanet")
ARCH_NAMES = {"lact": "LaCT", "deltanet": "DeltaNet"}
LENGTHS = ("4K", "8K", "16K")
# Spec 7.4: which lm-eval task each Table 3 family is (S inferred, MK probable); override per call.
NIAH_FAMILIES = {"S": "niah_single_1", "MK": "niah_multikey_1", "MQ": "niah_multiquery", "MV": "niah_multivalue"}
QA_TASKS = {"squad": "SQuADQA", "hotpot": "HotpotQA"}
IDENTITY = tuple(ModelId(BASE).fields())  # model, stage, method, seed, post_task, post_length
LONGBENCH = TASK_KEYS  # LongBench task name -> Table 5 column
# Table E.1 (spec 7.6; family "short"): record task, a `{lm-eval task}-{metric}` cell (refine.evaluate.lmeval.short)
# -> (column group, column). The paper's columns, then the local offline tasks an offline config runs instead.
SHORT_COLUMNS = {
    "wikitext-word_perplexity": ("Perplexity", "Wiki ppl"),
    "lambada_openai-perplexity": ("Perplexity", "LMB ppl"),
    "fda-contains": ("Recall", "FDA"),
    "swde-contains": ("Recall", "SWDE"),
    "lambada_openai-acc": ("Accuracy", "LMB acc"),
    "piqa-acc": ("Accuracy", "PIQA"),
    "hellaswag-acc_norm": ("Accuracy", "Hella"),
    "winogrande-acc": ("Accuracy", "Wino"),
    "arc_easy-acc": ("Accuracy", "ARC-e"),
    "arc_challenge-acc_norm": ("Accuracy", "ARC-c"),
    "short_local_text-word_perplexity": ("Offline", "text ppl"),
    "short_local_cloze-perplexity": ("Offline", "cloze ppl"),
    "short_local_cloze-acc": ("Offline", "cloze acc"),
    "short_local_choice-acc": ("Offline", "choice acc"),
    "short_local_recall-contains": ("Offline", "recall"),
}
SHORT_TASKS = {task: col for task, (group, col) in SHORT_COLUMNS.items() if group == "Accuracy"}  # Avg: their mean
# the Offline cells whose metric is accuracy, the stand-ins of the Accuracy group: Table E.1's Offline "acc Avg" is
# their mean, and claim 8 (no forgetting) reads it when the paper's accuracy tasks have no records (an offline run)
OFFLINE_ACCURACY = tuple(t for t, (group, _) in SHORT_COLUMNS.items() if group == "Offline" and t.endswith("-acc"))


def qa_key(task: str) -> str | None:
    """``squad`` / ``hotpot`` for any RULER-QA task name that contains it."""
    return next((key for key in QA_TASKS if key in task.lower()), None)


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
    return qa_key(row["post_task"]) == row["task_key"] and int(row["post_length"]) == int(row["length"])


def normalize(records: pd.DataFrame) -> pd.DataFrame:
    """Add ``task_key`` and ``own_task`` to the records' identity fields (``refine.experiment.ModelId.fields``)."""
    df = records.copy()
    missing = [c for c in IDENTITY if c not in df]
    if missing:
        raise ValueError(f"records lack identity field(s) {missing} (written by refine.evaluate.cells.record_fields)")
    df["seed"] = df["seed"].astype(int)
    df["ttt"] = df["ttt"].fillna("none") if "ttt" in df else "none"
    df["task_key"] = [_task_key(f, t) for f, t in zip(df["family"], df["task"])]
    df["own_task"] = df.apply(_own_task, axis=1) if len(df) else []
    return df


RECORD_COLUMNS = (
    "experiment",
    "arch",
    *IDENTITY,
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
    """Normalized DataFrame from record dicts: ``examples`` replaced by ``example_scores`` (score points by example
    index; None where they do not make the score, ``stats.example_scores``) and ``score_sd`` (their standard
    deviation; NaN where None)."""
    out = []
    for r in rows:
        scores = example_scores(r.get("examples"), r["score"])
        sd = math.nan if scores is None else float(pd.Series(scores).std(ddof=1))
        out.append({**{k: v for k, v in r.items() if k != "examples"}, "example_scores": scores, "score_sd": sd})
    return normalize(pd.DataFrame(out, columns=None if rows else [*RECORD_COLUMNS, "example_scores", "score_sd"]))


def load_records(root: str | Path) -> pd.DataFrame:
    """Every record under ``root`` (an ``evals`` directory; ``refine.evaluate.records.read_records``) as
    ``records_frame`` has them."""
    from refine.evaluate.records import read_records

    return records_frame(read_records(root, examples=True).to_dict("records"))


def load_metrics(root: str | Path | None) -> pd.DataFrame:
    """Every ``metrics.jsonl`` under ``root`` (a ``train`` directory; None: none), one row per line; each row
    carries its run's ``arch`` and identity fields (``refine.train.stages``)."""
    rows = []
    for path in sorted(Path(root).rglob("metrics.jsonl")) if root else []:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err})") from err
    return pd.DataFrame(rows, columns=None if rows else ["arch", *IDENTITY, "step", "split"])
