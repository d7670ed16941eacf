"""Training rows as token ids (spec 3.1: no BOS, right-truncated, left-padded to L); the padded batches come
from `refine.data.batching`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from refine.data.batching import pad, truncate
from refine.data.io import read_column
from refine.data.tokenizer import tokenize


def encode_texts(path: Path | str, tokenizer, max_length: int | None) -> list[list[int]]:
    """The `text` column tokenised (no special tokens), right-truncated to `max_length` when given."""
    ids = tokenize(read_column(path, "text"), tokenizer)
    return truncate(ids, max_length, source=str(path), field="text") if max_length else ids


def pack(docs: Sequence[Sequence[int]], length: int, eos: int) -> list[list[int]]:
    """Concatenate documents, each followed by EOS, and cut into full rows of `length` (pretraining)."""
    stream = [t for doc in docs for t in (*doc, eos)]
    return [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]


def text_batch(rows: Sequence[Sequence[int]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask` [B, length], left-padded."""
    ids, mask = pad(list(rows), length, pad_id, "left")
    return {"input_ids": ids, "attention_mask": mask}
