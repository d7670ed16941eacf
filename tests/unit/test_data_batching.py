"""Batching: no special tokens, right-truncation with a named warning, left padding, answer-only labels."""

import logging

import pytest

from refine.data.batching import encode_prompt_answer, encode_prompts, iter_batches, pad
from refine.data.io import write_table
from refine.data.tokenizer import train_tokenizer
from refine.ops.linear_ce import IGNORE_INDEX


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["alpha beta gamma delta epsilon zeta eta theta"] * 8, vocab_size=300)


def test_left_padded_prompts_and_truncation_warning(tok, caplog):
    long_text, short_text = "alpha beta gamma delta epsilon zeta", "alpha"
    n_long = len(tok(long_text, add_special_tokens=False)["input_ids"])
    with caplog.at_level(logging.WARNING, logger="refine.data.batching"):
        batch = encode_prompts([long_text, short_text], tok, 4, source="data/x.parquet")
    assert "data/x.parquet: field 'prompt': 1 of 2 rows exceed 4 tokens" in caplog.text
    assert f"dropped {n_long - 4}-{n_long - 4} tokens" in caplog.text
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape == (2, 4)
    assert ids[0].tolist() == tok(long_text, add_special_tokens=False)["input_ids"][:4]  # first tokens kept
    n_short = len(tok(short_text, add_special_tokens=False)["input_ids"])
    assert mask[1].tolist() == [0] * (4 - n_short) + [1] * n_short
    assert (ids[1, : 4 - n_short] == tok.pad_token_id).all()


def test_prompt_answer_labels(tok):
    batch = encode_prompt_answer(
        ["alpha beta", "gamma"], [["delta epsilon", "x"], "zeta"], tok, 6, 5, source="f.parquet"
    )
    answer = tok("delta epsilon", add_special_tokens=False)["input_ids"]
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 11)
    assert batch["labels"][0, :6].eq(IGNORE_INDEX).all()
    assert batch["labels"][0, 6 : 6 + len(answer)].tolist() == answer  # answers[0], right-padded, no EOS
    assert batch["labels"][0, 6 + len(answer) :].eq(IGNORE_INDEX).all()
    assert batch["attention_mask"][0, 6:].tolist() == [1] * len(answer) + [0] * (5 - len(answer))


def test_pad_rejects_overlong():
    with pytest.raises(ValueError, match="does not fit"):
        pad([[1, 2, 3]], 2, 0, "left")
    ids, mask = pad([[1, 2]], 4, 9, "right")
    assert ids.tolist() == [[1, 2, 9, 9]] and mask.tolist() == [[1, 1, 0, 0]]


def test_iter_batches_in_order_drop_last(tmp_path):
    path = write_table([{"prompt": str(i)} for i in range(21)], tmp_path / "rows.jsonl")
    batches = list(iter_batches(path, 8))
    assert [list(b["prompt"]) for b in batches] == [
        [str(i) for i in range(8)],
        [str(i) for i in range(8, 16)],
    ]
    assert sum(len(b) for b in iter_batches(path, 8, drop_last=False)) == 21
    with pytest.raises(KeyError, match=r"rows\.jsonl.*'answer'"):
        list(iter_batches(path, 8, columns=["prompt", "answer"]))
