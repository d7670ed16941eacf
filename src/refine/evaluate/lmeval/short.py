"""Table E.1's short-context suite through lm-eval 0.4.13 (spec 7.6): the paper's tasks or local offline ones.

A suite cell is `{task}-{metric}` (e.g. `lambada_openai-acc`): one lm-eval task, one of its metrics, one record.
The paper's cells use lm-eval's own tasks, which download their datasets from the hub (paper config). The
local tasks (packaged `short_local_*.yaml`) are built here from the corpus validation split's recalled facts
(`Question: ...? Answer: v.`, `refine.data.corpus`), one per kind of Table E.1 metric, so an offline run goes
through every lm-eval output type the paper's suite uses:

  short_local_text    rolling log-likelihood of each document   word_perplexity   (as wikitext)
  short_local_cloze   the answer after the document so far      perplexity, acc   (as lambada_openai)
  short_local_choice  the answer among other facts' answers     acc, acc_norm     (as piqa, hellaswag, arc)
  short_local_recall  the answer generated greedily             contains          (as fda, swde)
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from refine.evaluate.lmeval.harness import _evaluate, _is_lm, load_hflm

PACKAGE = Path(__file__).parent
LOCAL_TASKS = ("short_local_text", "short_local_cloze", "short_local_choice", "short_local_recall")
RAW_METRICS = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")  # reported as is; others x100
FACT = re.compile(r"Question: (?P<question>[^?\n]+\?) Answer: (?P<answer>[^\n]+?)\.(?=\s|$)")


@dataclass
class ShortConfig:
    max_length: int | None = None  # HFLM context limit in tokens; default: the cells' length
    batch_size: int = 1
    num_fewshot: int | None = None  # None: each task's own (0 for every Table E.1 task)
    limit: int | None = None  # first N documents per task (smoke runs)
    num_choices: int = 4  # answers per short_local_choice question: the true one and distractors
    seed: int = 0  # the distractors' draw


def split_cell(cell: str) -> tuple[str, str]:
    """(lm-eval task, metric) of a suite cell `{task}-{metric}`."""
    task, sep, metric = cell.rpartition("-")
    if not sep or not task or not metric:
        raise ValueError(f"short-context cell {cell!r} is not {{lm-eval task}}-{{metric}}, e.g. lambada_openai-acc")
    return task, metric


def local_docs(texts: Sequence[str], num_choices: int = 4, seed: int = 0) -> dict[str, list[dict]]:
    """The local tasks' documents from corpus texts: every document (text), and per recalled fact its context
    (the document up to `Answer:`), answer, and for the choice task up to `num_choices` answers (distractors
    drawn from facts asked the same way first, then any other answers) with the true one's `label`."""
    facts = []
    for i, text in enumerate(texts):
        for m in FACT.finditer(text):
            kind = " ".join(m["question"].split()[:3])  # "Where is the", "Who founded the", ...
            facts.append({"doc": i, "context": text[: m.start("answer")].rstrip(), "answer": m["answer"], "kind": kind})
    if not facts:
        raise ValueError("no recalled facts ('Question: ...? Answer: ...') in the corpus texts for the local tasks")
    rng = random.Random(f"short_local:{seed}")
    choice = []
    for f in facts:
        same = sorted({g["answer"] for g in facts if g["kind"] == f["kind"]} - {f["answer"]})
        other = sorted({g["answer"] for g in facts} - set(same) - {f["answer"]})
        rng.shuffle(same), rng.shuffle(other)
        options = [f["answer"], *(same + other)[: num_choices - 1]]
        if len(options) < 2:
            continue
        rng.shuffle(options)
        choice.append({"context": f["context"], "choices": options, "label": options.index(f["answer"])})
    qa = [{"context": f["context"], "answer": f["answer"]} for f in facts]
    return {
        "short_local_text": [{"text": t} for t in texts],
        "short_local_cloze": qa,
        "short_local_choice": choice,
        "short_local_recall": qa,
    }


def render_local_tasks(tasks: Sequence[str], texts: Sequence[str], run_dir: str | Path, cfg: ShortConfig) -> None:
    """Write each local task's documents (`<task>.jsonl`) and a YAML including its packaged one with absolute
    `data_files` (lm-eval resolves relative ones against the working directory) into `run_dir`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    docs = local_docs(texts, cfg.num_choices, cfg.seed)
    for task in tasks:
        data = run_dir / f"{task}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs[task]))
        config = {
            "include": str(PACKAGE / f"{task}.yaml"),
            "task": task,
            "dataset_kwargs": {"data_files": {"test": [str(data.resolve())]}},
        }
        (run_dir / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_short(
    model,
    cells: Sequence[str],
    max_length: int,
    *,
    corpus: str | Path | None = None,
    cfg: ShortConfig | None = None,
    run_dir: str | Path | None = None,
    **hflm_kwargs,
) -> dict[str, dict]:
    """Evaluate suite cells with `model` (a checkpoint folder, or an lm-eval `LM`) in one lm-eval run.

    Local tasks are built from `corpus` (a parquet file with a `text` column, e.g. the corpus validation split).
    Returns `{cell: {"metric", "score", "n", "examples"}}`: the score is lm-eval's aggregate (accuracies and
    `contains` in %, perplexities as is), examples lm-eval's per-document values. `hflm_kwargs` go to
    `load_hflm` (device, dtype, tokenizer).
    """
    from lm_eval.tasks import TaskManager

    cfg = cfg or ShortConfig()
    pairs = {cell: split_cell(cell) for cell in cells}
    tasks = list(dict.fromkeys(task for task, _ in pairs.values()))
    local = [t for t in tasks if t in LOCAL_TASKS]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(run_dir or tmp)
        if local:
            if corpus is None:
                raise ValueError(f"local tasks {local} need corpus= (a parquet file with a text column)")
            import pandas as pd

            render_local_tasks(local, pd.read_parquet(corpus, columns=["text"])["text"].tolist(), run_dir, cfg)
        manager = TaskManager(include_path=str(run_dir) if local else None, include_defaults=len(local) < len(tasks))
        lm = model if _is_lm(model) else load_hflm(model, max_length, batch_size=cfg.batch_size, **hflm_kwargs)
        res = _evaluate(lm, tasks, manager, cfg.limit, num_fewshot=cfg.num_fewshot)
    return {cell: collect_metric(res, task, metric) for cell, (task, metric) in pairs.items()}


def collect_metric(res: dict, task: str, metric: str) -> dict:
    """One metric of one task from `simple_evaluate(..., log_samples=True)`: aggregate, count, per-document
    values (lm-eval's: 0/1 for acc, the log-likelihood for perplexity, (log-likelihood, words) for word_perplexity)."""
    results = res["results"][task]
    key = f"{metric},none"
    if key not in results:
        found = sorted(k.split(",")[0] for k in results if k.endswith(",none") and "_stderr" not in k)
        raise ValueError(f"lm-eval task {task} has no metric {metric!r} (it reports {found})")
    samples = res["samples"][task]
    scale = 1 if metric in RAW_METRICS else 100
    return {
        "metric": metric,
        "score": scale * float(results[key]),
        "n": len(samples),
        "examples": [{"index": s["doc_id"], "value": s[metric]} for s in samples],
    }
