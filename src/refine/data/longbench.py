"""LongBench (v1) evaluation files: ReFINE's `<task>_16384.parquet` files, or the same rows built from the
official data on the hub.

Task list and column keys: paper Table 5 (spec 3.3, 13.4); per-task generation
lengths and prompts: THUDM/LongBench `LongBench/config/dataset2maxlen.json` and `dataset2prompt.json`
(HEAD 2e00731). Evaluated rows per task = floor(rows / 8) * 8 (TTT batches of 8 with drop_last, spec 3.3).
The hub dataset `THUDM/LongBench` ships `data.zip` with one `data/<task>.jsonl` per task (fields `input`,
`context`, `answers`, ...; its loading script reads the same files).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refine.atomic import atomic_path
from refine.data.io import read_table
from refine.data.tokenizer import count_tokens

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
SOURCES = ("auto", "local", "hub", "none")
HUB_ARCHIVE = "data.zip"

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
    """`refine data longbench --cfg` fields. `source`: "local" reads ReFINE's files in `local_dir`; "hub" builds
    the same rows from `hub_repo`'s archive at `hub_revision` (needs network once); "auto" is local when
    `local_dir` is a directory, else hub; "none" runs no LongBench."""

    source: str = "auto"
    local_dir: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    max_length: int = 16384
    hub_repo: str = "THUDM/LongBench"
    hub_revision: str = "5e628be450b7e67fb7ae6e201bd6d8f7056f7672"  # a commit of the hub dataset repo
    max_examples: int | None = None  # keep the first N rows per task (CPU budgets); None = all

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"longbench.source: {self.source!r} is not one of {SOURCES}")

    def resolved_source(self) -> str:
        """ "local", "hub" or "none": auto picks local when `local_dir` is a directory."""
        if self.source != "auto":
            return self.source
        return "local" if self.local_dir and Path(self.local_dir).is_dir() else "hub"


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


def download_archive(repo: str, revision: str, out: str | Path) -> Path:
    """The hub dataset's `data.zip` at `revision` -> `out` (through the hub cache; needs network once)."""
    from huggingface_hub import hf_hub_download

    cached = hf_hub_download(repo, HUB_ARCHIVE, repo_type="dataset", revision=revision)
    with atomic_path(out) as tmp:
        shutil.copyfile(cached, tmp)
    return Path(out)


def check_archive(repo: str, revision: str) -> None:
    """Raise RuntimeError saying what to do unless the archive is in the hub cache or reachable on the hub."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, HUB_ARCHIVE, revision=revision, repo_type="dataset"), str):
        return
    try:
        found, why = HfApi().file_exists(repo, HUB_ARCHIVE, repo_type="dataset", revision=revision), "not found"
    except Exception as err:  # noqa: BLE001  (any failure to reach the hub means the same to the user)
        found, why = False, f"{type(err).__name__}: {err}"
    if not found:
        raise RuntimeError(
            f"LongBench: no local data and the hub archive {repo}@{revision}/{HUB_ARCHIVE} is unavailable ({why}). "
            "Set longbench.local_dir to a directory with ReFINE's <task>_16384.parquet files, allow access to the "
            "Hugging Face hub (or pre-fill its cache), or set longbench.source: none to run without LongBench."
        )


def archive_examples(archive: str | Path, task: str) -> list[dict]:
    """The official examples of `task` from the hub archive (`data/<task>.jsonl`), in file order."""
    with zipfile.ZipFile(archive) as z, z.open(f"data/{task}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_task(examples: Iterable[dict], task: str, tokenizer, max_length: int = 16384) -> pd.DataFrame:
    """ReFINE's rows for `task` from official examples: the official prompt template, lengths in `tokenizer`
    tokens, and only the rows with prompt_length + max_answer_length <= max_length (ReFINE's files are filtered,
    not truncated, spec 3.3)."""
    rows = []
    for example in examples:
        prompt = PROMPTS[task].format(context=example["context"], input=example["input"])
        prompt_length = count_tokens([prompt], tokenizer)[0]
        answer_length = max(count_tokens(example["answers"], tokenizer))
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
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(
        {c: "int64" for c in ("prompt_length", "max_answer_length", "total_length", "max_gen_tokens")}
    )
