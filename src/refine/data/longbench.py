"""LongBench (v1) evaluation files: ReFINE's `<task>_16384.parquet` files or the hub.

Task list and column keys: paper Table 5 (spec 3.3, 13.4); per-task generation
lengths and prompts: THUDM/LongBench `LongBench/config/dataset2maxlen.json` and `dataset2prompt.json`
(HEAD 2e00731). Evaluated rows per task = floor(rows / 8) * 8 (TTT batches of 8 with drop_last, spec 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refine.data.batching import count_tokens
from refine.data.io import read_table

# Paper Table 5 column order -> LongBench task.
TASK_KEYS = {
    "narrativeqa": "NQ",
    "qasper": "QR",
    "multifieldqa_en": "MF",
    "hotpotqa": "HP",
    "2wikimqa": "2W",
    "qmsum": "QM",
    "multi_news": "MN",
    "samsum": "SS",
    "trec": "TC",
    "triviaqa": "TQ",
    "lcc": "LC",
    "repobench-p": "RP",
}
TASKS = tuple(TASK_KEYS)
EXTRA_TASKS = ("musique", "gov_report")  # shipped by ReFINE, excluded from Table 5 (< 20 rows under 16K)
MAX_GEN_TOKENS = {
    "narrativeqa": 128,
    "qasper": 128,
    "multifieldqa_en": 64,
    "hotpotqa": 32,
    "2wikimqa": 32,
    "musique": 32,
    "gov_report": 512,
    "qmsum": 512,
    "multi_news": 512,
    "trec": 64,
    "triviaqa": 32,
    "samsum": 128,
    "lcc": 64,
    "repobench-p": 64,
}
COLUMNS = (
    "prompt",
    "answers",
    "prompt_length",
    "max_answer_length",
    "total_length",
    "max_gen_tokens",
    "task",
)
BATCH_SIZE = 8

_PASSAGES = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
)
_MULTI_DOC = (
    _PASSAGES + "\n\nThe following are given passages.\n{context}\n\n" + _PASSAGES + "\n\nQuestion: {input}\nAnswer:"
)
_STORY = (
    "Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation."
)
_QASPER = (
    "as concisely as you can, using a single phrase or sentence if possible. If the question cannot be "
    'answered based on the information in the article, write "unanswerable". If the question is a yes/no '
    'question, answer "yes", "no", or "unanswerable". Do not provide any explanation.'
)
PROMPTS = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. "
    + _STORY
    + "\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you can, using a single "
    "phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
    "qasper": "You are given a scientific article and a question. Answer the question "
    + _QASPER
    + "\n\nArticle: {context}\n\n Answer the question based on the above article "
    + _QASPER
    + "\n\nQuestion: {input}\n\nAnswer:",
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following "
    "question based on the above text, only give me the answer and do not output any other words.\n\n"
    "Question: {input}\nAnswer:",
    "hotpotqa": _MULTI_DOC,
    "2wikimqa": _MULTI_DOC,
    "musique": _MULTI_DOC,
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
    "Report:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the "
    "query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above "
    "meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n"
    "{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
    "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n"
    "{context}\n{input}",
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any "
    "other words. The following are some examples.\n\n{context}\n\n{input}",
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
    "{context}\n\n{input}",
    # ReFINE's lcc/repobench-p files end at "Next line of code:" (lm-eval's wording), without the official "\n".
    "lcc": "Please complete the code given below. \n{context}Next line of code:",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:",
}


@dataclass
class LongBenchConfig:
    """`refine data longbench --cfg` fields (`source`: "local" reads `local_dir`, "hub" needs network)."""

    source: str = "local"
    local_dir: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    max_length: int = 16384
    hub_repo: str = "THUDM/LongBench"
    max_examples: int | None = None  # keep the first N rows per task (CPU budgets); None = all


def evaluated_count(rows: int, batch_size: int = BATCH_SIZE) -> int:
    """Rows scored when batches of `batch_size` drop the last partial batch."""
    return rows // batch_size * batch_size


def task_file(data_dir: str | Path, task: str, max_length: int = 16384) -> Path:
    return Path(data_dir) / f"{task}_{max_length}.parquet"


def load_task(data_dir: str | Path, task: str, max_length: int = 16384) -> pd.DataFrame:
    """One task's rows (ReFINE columns); errors name the file and missing columns or an empty file."""
    if task not in MAX_GEN_TOKENS:
        raise ValueError(f"unknown LongBench task {task!r}; choose from {list(MAX_GEN_TOKENS)}")
    return read_table(task_file(data_dir, task, max_length), COLUMNS)


def load_longbench(data_dir: str | Path, tasks=TASKS, max_length: int = 16384) -> dict[str, pd.DataFrame]:
    """Every requested task from `data_dir`; the extra tasks are returned when asked for and present."""
    return {
        t: load_task(data_dir, t, max_length)
        for t in tasks
        if t not in EXTRA_TASKS or task_file(data_dir, t, max_length).is_file()
    }


def load_hub_task(task: str, tokenizer, max_length: int = 16384, repo: str = "THUDM/LongBench") -> pd.DataFrame:
    """Rebuild ReFINE's file for `task` from the hub (needs network): official prompt, rows with
    prompt_length + max_answer_length <= max_length."""
    import datasets

    rows = []
    for example in datasets.load_dataset(repo, task, split="test"):
        prompt = PROMPTS[task].format(context=example["context"], input=example["input"])
        prompt_length, answer_length = (
            count_tokens([prompt], tokenizer)[0],
            max(count_tokens(example["answers"], tokenizer)),
        )
        if prompt_length + answer_length <= max_length:
            rows.append(
                {
                    "prompt": prompt,
                    "answers": list(example["answers"]),
                    "prompt_length": prompt_length,
                    "max_answer_length": answer_length,
                    "total_length": prompt_length + answer_length,
                    "max_gen_tokens": MAX_GEN_TOKENS[task],
                    "task": task,
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
