"""RULER NIAH rows: RULER's template, needle sentences and answers; fit the length budget; deterministic."""

import re

import pytest

from refine.data.corpus import synthetic_corpus
from refine.data.niah import NOISE, TABLE3_TASKS, VARIANTS, default_essay, generate_niah
from refine.data.text import part_of
from refine.data.tokenizer import train_tokenizer

# RULER scripts/data/synthetic/constants.py:27 in its plural and singular (niah.py:193-198) forms.
PLURAL = (
    "Some special magic {t}s are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {t}s afterwards.\n"
)
SINGULAR = (
    "A special magic {t} is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {t} afterwards.\n"
)
EXPECTED_ANSWERS = {"niah_multivalue": 4, "niah_multiquery": 4}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(synthetic_corpus(40, 0, n_words=800)["text"], vocab_size=1024)


@pytest.fixture(scope="module")
def essay():
    return default_essay(7, 6000)


@pytest.mark.parametrize("task", list(VARIANTS))
def test_rows_match_ruler_format_and_fit(task, tokenizer, essay):
    v = VARIANTS[task]
    rows = generate_niah(task, tokenizer, 1024, 6, essay=essay, tokens_to_generate=64)
    unit = v.type_v[:-1]
    for row in rows:
        assert set(row) >= {"index", "input", "outputs", "length", "max_length", "gen_prefix"}
        text, answers = row["input"], row["outputs"]
        assert len(answers) == EXPECTED_ANSWERS.get(task, 1)
        many = len(answers) > 1
        assert text.startswith((PLURAL if many else SINGULAR).format(t=unit))
        query = re.search(
            r"\nWhat (?:are all|is) the special magic \w+ for (.+) mentioned in the provided text\?$", text
        ).group(1)
        keys = query.replace(", and ", ", ").split(", ")
        verb = "are" if many else "is"
        assert (
            row["gen_prefix"]
            == f"The special magic {unit + 's' * many} for {query} mentioned in the provided text {verb}"
        )
        assert row["answer_prefix"] == " " + row["gen_prefix"]
        for answer in answers:
            assert any(f"One of the special magic {v.type_v} for {k} is: {answer}." in text for k in keys)
            assert re.fullmatch(r"\d{7}" if v.type_v == "numbers" else r"[0-9a-f-]{36}", answer)
        if v.type_k == "words":
            assert all(part_of(k.split("-")[1]) == "eval" for k in keys)
        n_tokens = len(tokenizer(f"{text} {row['gen_prefix']}", add_special_tokens=False)["input_ids"]) + 64
        assert row["length"] == n_tokens <= row["max_length"] == 1024
        assert n_tokens > 0.6 * 1024  # the haystack search fills the budget
        if v.haystack == "noise":
            assert text.count(NOISE) > 10


def test_deterministic_and_seeded(tokenizer, essay):
    a = generate_niah("niah_multikey_1", tokenizer, 1024, 3, essay=essay)
    assert a == generate_niah("niah_multikey_1", tokenizer, 1024, 3, essay=essay)
    assert a != generate_niah("niah_multikey_1", tokenizer, 1024, 3, essay=essay, seed=1)


def test_essay_needed_and_too_short_budget(tokenizer):
    with pytest.raises(ValueError, match="essay"):
        generate_niah("niah_single_2", tokenizer, 1024, 1)
    with pytest.raises(ValueError, match="max_length=200"):
        generate_niah("niah_single_1", tokenizer, 200, 1)


def test_table3_mapping():
    assert TABLE3_TASKS == {
        "S-NIAH": "niah_single_1",
        "MK-NIAH": "niah_multikey_1",
        "MQ-NIAH": "niah_multiquery",
        "MV-NIAH": "niah_multivalue",
    }
    assert set(TABLE3_TASKS.values()) <= set(VARIANTS) and len(VARIANTS) == 8
