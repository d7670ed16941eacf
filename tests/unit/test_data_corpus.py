"""Synthetic corpus: seeded, sized in words or tokens, facts recalled later, training-half entities only."""

import random
import re

import pandas as pd
import pytest

from refine.data.corpus import STYLES, CorpusConfig, prose_document, synthetic_corpus
from refine.data.text import entity_nouns, part_of
from refine.data.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def words_corpus():
    return synthetic_corpus(30, 0, n_words=1200)


def test_deterministic_per_seed(words_corpus):
    pd.testing.assert_frame_equal(words_corpus, synthetic_corpus(30, 0, n_words=1200))
    other = synthetic_corpus(30, 1, n_words=1200)
    assert not set(words_corpus["text"]) & set(other["text"])
    assert set(words_corpus["style"]) == set(CorpusConfig().style_weights) < set(STYLES)
    assert words_corpus["n_words"].between(1000, 1400).all()


def test_token_sized_documents(words_corpus):
    tok = train_tokenizer(words_corpus["text"], vocab_size=1024)
    docs = synthetic_corpus(12, 5, tokenizer=tok, length=1024)
    counts = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in docs["text"]]
    assert counts == list(docs["n_tokens"]) and max(counts) <= 1024
    assert sum(counts) / len(counts) >= 0.93 * 1024


def test_prose_facts_are_recalled_later():
    text, answer_start = prose_document(random.Random(0), 3000)
    assert answer_start == 0  # prose has no answer: every token is text to learn
    statements = re.findall(
        r"(?<!Recall that )[Tt]he (\w+ \w+) (?:was founded by|is located in) ([A-Z][\w ]+?)\.", text
    )
    recalled = [(key, value) for key, value in statements if text.count(value) >= 2]
    assert len(recalled) >= 3
    for key, value in recalled:
        first, last = text.index(value), text.rindex(value)
        assert last - first > 0.05 * len(text)  # recalled far from where it was stated
        assert part_of(key.split()[1]) == "train"


def test_entity_halves_are_disjoint():
    train, evaluation = set(entity_nouns("train")), set(entity_nouns("eval"))
    assert train and evaluation and not train & evaluation


def test_answer_start_splits_each_document_before_its_answer():
    docs = synthetic_corpus(50, 3, n_words=300, style_weights=dict.fromkeys(STYLES, 1))
    assert set(docs["style"]) == set(STYLES)
    for row in docs.itertuples():
        context, answer = row.text[: row.answer_start], row.text[row.answer_start :]
        if row.style == "prose":
            assert row.answer_start == 0
        elif row.style in ("niah", "needle", "multikey"):
            assert context.endswith((" is", " are")) and answer.startswith(" ") and answer.endswith(".")
            assert all(value in context.split("\n")[-1] or value in context for value in answer[1:-1].split(", "))
        else:
            assert context.endswith("Answer:") and answer.strip()
    for style, needles in (("needle", 1), ("multikey", 4)):
        rows = docs[docs["style"] == style]
        assert all(re.fullmatch(r" \d{7}\.", t[a:]) for t, a in zip(rows["text"], rows["answer_start"]))
        assert all(t.count("One of the special magic numbers for") == needles for t in rows["text"])


def test_min_length_draws_each_documents_target(words_corpus):
    tok = train_tokenizer(words_corpus["text"], vocab_size=1024)
    sizes = {"tokenizer": tok, "length": 400, "min_length": 200, "style_weights": {"prose": 1, "needle": 1}}
    docs = synthetic_corpus(16, 2, **sizes)
    assert docs["n_tokens"].max() <= 400 and docs["n_tokens"].min() >= 0.95 * 200
    assert docs["n_tokens"].std() > 30  # spread over the range, not all fitted to 400
    pd.testing.assert_frame_equal(docs, synthetic_corpus(16, 2, **sizes))


def test_a_document_too_long_for_four_draws_gets_more(monkeypatch):
    """Two-passage QA prompts often exceed 256 tokens: document 299 of this mix needs more than four draws."""
    from refine.data import corpus

    tok = train_tokenizer(synthetic_corpus(60, 0, n_words=600)["text"], vocab_size=1024)
    sizes = {"tokenizer": tok, "length": 256, "min_length": 160, "style_weights": {"needle": 2, "prose": 1, "qa": 1}}
    docs = synthetic_corpus(300, 1, **sizes)
    assert docs["n_tokens"].max() <= 256
    monkeypatch.setattr(corpus, "REDRAWS", 4)
    with pytest.raises(ValueError, match="document 299"):
        synthetic_corpus(300, 1, **sizes)
