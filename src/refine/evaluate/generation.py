"""Batched greedy generation for RULER QA and LongBench, as ReFINE's validation does it (spec §3.1, §7.1).

Prompts are tokenised without special tokens, right-truncated to the prompt budget (first tokens kept) and
left-padded (`rl_dataset.py:416-431`, through `refine.data.batching`); batches go in order with `drop_last`
(`ray_trainer.py:719-727`); decoding is greedy for `max_new_tokens` (32 in ReFINE, `hf_rollout.py:95-129`),
stops at EOS and is decoded with `skip_special_tokens=True` (`naive.py:54`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from refine.data.batching import pad, pad_id, truncate
from refine.data.tokenizer import tokenize


@dataclass
class GenerationConfig:
    max_prompt_length: int = 16384  # prompt budget in tokens; longer prompts are right-truncated
    max_new_tokens: int = 32  # ReFINE: 32 for every task
    official_max_new_tokens: bool = False  # LongBench: each row's official `max_gen_tokens` instead
    batch_size: int = 8
    drop_last: bool = True
    pad_to_budget: bool = True  # left-pad to max_prompt_length as ReFINE does (LaCT ignores the mask)


@dataclass
class Batch:
    """One generation batch, handed to `before_batch` before it is generated."""

    indices: list[int]  # positions in the prompt sequence
    prompts: list[str]
    input_ids: torch.Tensor  # [B, T] long, left-padded
    attention_mask: torch.Tensor  # [B, T] long, 1 = real token
    max_new_tokens: int


def batch_ranges(n: int, batch_size: int, drop_last: bool) -> list[range]:
    """Consecutive index ranges of `batch_size`; a short last batch is dropped when `drop_last`."""
    stop = n - n % batch_size if drop_last else n
    return [range(i, min(i + batch_size, stop)) for i in range(0, stop, batch_size)]


def generate_responses(
    model,
    tokenizer,
    prompts: Sequence[str],
    cfg: GenerationConfig,
    *,
    source: str = "<memory>",
    max_new_tokens: Sequence[int] | None = None,
    before_batch: Callable[[Batch], None] | None = None,
) -> list[str]:
    """Greedy responses for the evaluated prompts, in order (the first ⌊n/B⌋·B when `drop_last`).

    `source` names the data in the truncation warning; `max_new_tokens` gives a per-prompt budget (else
    `cfg.max_new_tokens`); `before_batch(batch)` runs before each batch is generated (test-time training).
    """
    budgets = list(max_new_tokens) if max_new_tokens is not None else [cfg.max_new_tokens] * len(prompts)
    eos, pad_token = tokenizer.eos_token_id, pad_id(tokenizer)
    device = next(model.parameters()).device
    ranges = batch_ranges(len(prompts), cfg.batch_size, cfg.drop_last)
    kept = [prompts[i] for r in ranges for i in r]
    ids = truncate(tokenize(kept, tokenizer), cfg.max_prompt_length, source=source, field="prompt")

    responses: list[str] = []
    for r in ranges:
        rows = ids[r.start : r.stop]
        width = cfg.max_prompt_length if cfg.pad_to_budget else max(map(len, rows))
        input_ids, mask = pad(rows, width, pad_token, "left")
        batch = Batch(list(r), [prompts[i] for i in r], input_ids, mask, max(budgets[i] for i in r))
        if before_batch is not None:
            before_batch(batch)
        new = _greedy(model, batch, eos, pad_token, device)
        for row, i in zip(new.tolist(), r):
            row = row[: budgets[i]]
            if eos in row:
                row = row[: row.index(eos)]
            responses.append(tokenizer.decode(row, skip_special_tokens=True))
    return responses


def _greedy(model, batch: Batch, eos: int, pad: int, device) -> torch.Tensor:
    """The new tokens [B, <= max_new_tokens] of greedy decoding, model in eval mode for the call."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(
                batch.input_ids.to(device),
                attention_mask=batch.attention_mask.to(device),
                max_new_tokens=batch.max_new_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=pad,
            )
    finally:
        model.train(was_training)
    return out[:, batch.input_ids.shape[1] :].cpu()
