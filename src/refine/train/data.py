"""Training rows as token ids (spec 3.1: no BOS, right-truncated, left-padded to L); the padded batches come
from `refine.data.batching`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from refine.data.batching import pad, truncate
from refine.data.io import read_column
from refine.data.tokenizer import tokenize
from refine.ops.linear_ce import IGNORE_INDEX


def encode_texts(path: Path | str, tokenizer, max_length: int | None) -> list[list[int]]:
    """The `text` column tokenised (no special tokens), right-truncated to `max_length` when given."""
    ids = tokenize(read_column(path, "text"), tokenizer)
    return truncate(ids, max_length, source=str(path), field="text") if max_length else ids


def encode_documents(path: Path | str, tokenizer, max_length: int) -> list[tuple[list[int], int]]:
    """Pretraining rows, one document each: (token ids, index of the first token to learn). That index is the
    first answer token where the table's `answer_start` (a character offset, 0 = none) marks an answer, else 0.
    The two parts are tokenised apart; answers start at a space, where byte-level BPE splits anyway."""
    texts = read_column(path, "text")
    starts = read_column(path, "answer_start")
    contexts = tokenize([t[:a] for t, a in zip(texts, starts)], tokenizer)
    answers = tokenize([t[a:] for t, a in zip(texts, starts)], tokenizer)
    rows = [(c + a, len(c)) for c, a in zip(contexts, answers)]
    longest = max(len(ids) for ids, _ in rows)
    if longest > max_length:
        raise ValueError(f"{path}: a document has {longest} tokens > {max_length}; fit the corpus to the row length")
    return rows


def document_batch(rows: Sequence[tuple[Sequence[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask`, `labels` [B, longest row], right-padded; labels -100 before each row's
    first token to learn and on padding."""
    ids, mask = pad([list(r) for r, _ in rows], max(len(r) for r, _ in rows), pad_id, "right")
    learn = torch.arange(ids.shape[1])[None] >= torch.tensor([start for _, start in rows])[:, None]
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(~learn | (mask == 0), IGNORE_INDEX)}


def text_batch(rows: Sequence[Sequence[int]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask` [B, length], left-padded."""
    ids, mask = pad(list(rows), length, pad_id, "left")
    return {"input_ids": ids, "attention_mask": mask}
