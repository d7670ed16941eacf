"""LongBench: ReFINE's 12 (+2) task files load with the official prompts; evaluated counts = Table C.1."""

import pandas as pd
import pytest

from refine.data.batching import iter_batches
from refine.data.longbench import (
    EXTRA_TASKS,
    MAX_GEN_TOKENS,
    PROMPTS,
    TASK_KEYS,
    TASKS,
    evaluated_count,
    load_longbench,
    load_task,
    task_file,
)

# spec 3.3 / paper Table C.1: rows evaluated with batches of 8 and drop_last.
EVALUATED = {
    "narrativeqa": 56,
    "qasper": 184,
    "multifieldqa_en": 136,
    "hotpotqa": 96,
    "2wikimqa": 184,
    "qmsum": 104,
    "multi_news": 192,
    "samsum": 152,
    "trec": 200,
    "triviaqa": 120,
    "lcc": 488,
    "repobench-p": 320,
}


def test_task_constants():
    assert list(TASK_KEYS.values()) == [
        "NQ",
        "QR",
        "MF",
        "HP",
        "2W",
        "QM",
        "MN",
        "SS",
        "TC",
        "TQ",
        "LC",
        "RP",
    ]
    assert set(MAX_GEN_TOKENS) == set(PROMPTS) == set(TASKS) | set(EXTRA_TASKS)


def test_real_files_counts_and_prompts(shared_data):
    frames = load_longbench(shared_data / "longbench")
    assert list(frames) == list(TASKS)
    for task, frame in frames.items():
        assert evaluated_count(len(frame)) == EVALUATED[task], task
        assert sum(len(b) for b in iter_batches(frame, 8)) == EVALUATED[task]
        assert (frame["task"] == task).all() and (frame["max_gen_tokens"] == MAX_GEN_TOKENS[task]).all()
        head = PROMPTS[task].partition("{context}")[0]
        tail = PROMPTS[task].rpartition("}")[2]
        assert frame["prompt"].str.startswith(head).all() and frame["prompt"].str.endswith(tail).all(), task
    extra = load_longbench(shared_data / "longbench", EXTRA_TASKS)
    assert {t: len(f) for t, f in extra.items()} == {"musique": 17, "gov_report": 16}


def test_errors_name_file_and_column(tmp_path, shared_data):
    frame = pd.read_parquet(task_file(shared_data / "longbench", "trec")).head(2)
    frame.drop(columns=["answers"]).to_parquet(task_file(tmp_path, "trec"))
    with pytest.raises(KeyError, match=r"trec_16384\.parquet.*'answers'"):
        load_task(tmp_path, "trec")
    frame.head(0).to_parquet(task_file(tmp_path, "lcc"))
    with pytest.raises(ValueError, match=r"lcc_16384\.parquet: file has no rows"):
        load_task(tmp_path, "lcc")
    with pytest.raises(ValueError, match="unknown LongBench task"):
        load_task(tmp_path, "lsht")
