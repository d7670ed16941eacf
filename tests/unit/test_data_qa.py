"""RULER-QA: ReFINE's real test files load (200 rows), synthetic QA has the same format, fits, is seeded."""

import re

import pandas as pd
import pytest

from refine.data.corpus import synthetic_corpus
from refine.data.qa import QA_COLUMNS, QA_TASKS, TEMPLATE, generate_qa, load_ruler_qa, ruler_qa_file
from refine.data.text import FACT_KINDS, part_of
from refine.data.tokenizer import train_tokenizer

HEAD, _, TAIL = TEMPLATE.partition("{context}")
TAIL = TAIL.partition("{question}")[0]
QUESTIONS = [re.escape(k.question).replace(re.escape("{key}"), r"\w+ (\w+)") for k in FACT_KINDS] + [
    r"Where was the founder of the \w+ (\w+) born\?"
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(synthetic_corpus(40, 0, n_words=800)["text"], vocab_size=1024)


@pytest.mark.parametrize("task", QA_TASKS)
@pytest.mark.parametrize("model", ["lact", "delta_net"])
@pytest.mark.parametrize("length", [4096, 8192])
def test_real_files(shared_data, task, model, length):
    frame = load_ruler_qa(ruler_qa_file(shared_data / "ruler_qa", task, model, length))
    assert len(frame) == 200 and sorted(frame["index"]) == list(range(200))
    assert (frame["task"] == task).all() and (frame["max_seq_length"] == length).all()
    assert (frame["total_length"] <= length).all()
    assert frame["prompt"].str.startswith(HEAD + "Document 1:\n").all()
    assert frame["prompt"].map(lambda p: TAIL in p and p.endswith("\nAnswer:")).all()


@pytest.mark.parametrize("task", QA_TASKS)
def test_synthetic_format_fit_and_entities(tokenizer, task):
    frame = generate_qa(task, tokenizer, 1024, 8, seed=3, split="test")
    assert list(frame.columns) == list(QA_COLUMNS) and len(frame) == 8
    for row in frame.itertuples():
        assert row.prompt.startswith(HEAD + "Document 1:\n") and row.prompt.endswith("\nAnswer:")
        n_docs = len(re.findall(r"^Document \d+:$", row.prompt, flags=re.MULTILINE))
        assert n_docs >= 4
        assert all(a in row.prompt for a in row.answer)
        n_tokens = len(tokenizer(row.prompt, add_special_tokens=False)["input_ids"])
        assert row.prompt_length == n_tokens and n_tokens + 32 <= 1024 and n_tokens > 800
        assert row.total_length == row.prompt_length + row.max_answer_length
        question = row.prompt.rpartition("Question: ")[2].removesuffix("\nAnswer:")
        entity_noun = next(m.group(1) for m in (re.fullmatch(p, question) for p in QUESTIONS) if m)
        assert part_of(entity_noun) == "eval"


def test_synthetic_deterministic_and_splits_differ(tokenizer):
    a = generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="test")
    pd.testing.assert_frame_equal(a, generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="test"))
    train = generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="train")
    assert not set(a["prompt"]) & set(train["prompt"])


def test_loader_errors_name_file_and_column(tmp_path, shared_data):
    frame = pd.read_parquet(ruler_qa_file(shared_data / "ruler_qa", "ruler_squadqa", "lact", 4096)).head(3)
    missing = tmp_path / "no_answer.parquet"
    frame.drop(columns=["answer"]).to_parquet(missing)
    with pytest.raises(KeyError, match=r"no_answer\.parquet.*'answer'"):
        load_ruler_qa(missing)
    empty = tmp_path / "empty.parquet"
    frame.head(0).to_parquet(empty)
    with pytest.raises(ValueError, match=r"empty\.parquet: file has no rows"):
        load_ruler_qa(empty)
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        load_ruler_qa(tmp_path / "absent.parquet")
