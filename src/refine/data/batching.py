"""Tokenised, padded batches in ReFINE's layout (spec 3.1, `rl_dataset.py:390-431`).

Prompts: no special tokens (no BOS), right-truncated to the budget (the first tokens are kept), left-padded
to a fixed length with the pad id. Answers (SFT targets): `answers[0]`, no EOS, truncated, right-padded.
Every truncation is logged as a warning naming the source file and field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import torch

from refine.data.io import read_table
from refine.data.tokenizer import tokenize
from refine.ops.linear_ce import IGNORE_INDEX

log = logging.getLogger(__name__)


def truncate(seqs: list[list[int]], budget: int, *, source: str, field: str) -> list[list[int]]:
    """Keep the first `budget` tokens of each sequence; warn how many rows lost how many tokens."""
    cut = [len(s) - budget for s in seqs if len(s) > budget]
    if cut:
        log.warning(
            "%s: field %r: %d of %d rows exceed %d tokens; kept the first %d (dropped %d-%d tokens per row)",
            source,
            field,
            len(cut),
            len(seqs),
            budget,
            budget,
            min(cut),
            max(cut),
        )
    return [s[:budget] for s in seqs]


def pad(seqs: list[list[int]], length: int, pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both LongTensor [B, length]; `side` = "left" or "right"; sequences must fit."""
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if len(seq) > length:
            raise ValueError(f"sequence of {len(seq)} tokens does not fit length {length}; truncate first")
        cols = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
        ids[row, cols] = torch.tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def pad_id(tokenizer) -> int:
    """The pad id, EOS when the tokenizer has no pad token (spec 3.1)."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pid is None:
        raise ValueError("tokenizer has neither a pad nor an EOS token")
    return pid


def encode_prompts(
    texts: Sequence[str], tokenizer, max_length: int, *, source: str = "<memory>", field: str = "prompt"
) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask` [B, max_length]: right-truncated, left-padded prompts."""
    seqs = truncate(tokenize(texts, tokenizer), max_length, source=source, field=field)
    ids, mask = pad(seqs, max_length, pad_id(tokenizer), "left")
    return {"input_ids": ids, "attention_mask": mask}


def first_answer(answers) -> str:
    """`answers[0]` of a list-valued answer column (a plain string passes through)."""
    return answers if isinstance(answers, str) else answers[0]


def encode_prompt_answer(
    prompts: Sequence[str],
    answers: Sequence,
    tokenizer,
    max_prompt_length: int,
    max_answer_length: int,
    *,
    source: str = "<memory>",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
) -> dict[str, torch.Tensor]:
    """Answer-only SFT batch [B, P + A]: left-padded prompt then right-padded `answers[0]` (no EOS);
    `labels` = input ids on answer tokens, -100 elsewhere (unshifted: the model shifts)."""
    prompt = encode_prompts(prompts, tokenizer, max_prompt_length, source=source, field=prompt_field)
    targets = truncate(
        tokenize([first_answer(a) for a in answers], tokenizer),
        max_answer_length,
        source=source,
        field=answer_field,
    )
    answer_ids, answer_mask = pad(targets, max_answer_length, pad_id(tokenizer), "right")
    labels = torch.cat(
        [
            torch.full_like(prompt["input_ids"], IGNORE_INDEX),
            answer_ids.masked_fill(answer_mask == 0, IGNORE_INDEX),
        ],
        dim=1,
    )
    return {
        "input_ids": torch.cat([prompt["input_ids"], answer_ids], dim=1),
        "attention_mask": torch.cat([prompt["attention_mask"], answer_mask], dim=1),
        "labels": labels,
    }


def iter_batches(
    table: str | Path | pd.DataFrame, batch_size: int, *, drop_last: bool = True, columns: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """Consecutive row batches of a parquet/jsonl file (or frame) in file order; the last partial batch is
    dropped when `drop_last` (ReFINE's validation loader, spec 3.1)."""
    frame = table if isinstance(table, pd.DataFrame) else read_table(table, columns)
    stop = len(frame) // batch_size * batch_size if drop_last else len(frame)
    for start in range(0, stop, batch_size):
        yield frame.iloc[start : start + batch_size]
