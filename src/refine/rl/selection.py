"""Rollout-start selection: entropy smoothing, chunking and one position per chunk (spec 4.2-4.3, 10.8-10.9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_entropy(entropy: torch.Tensor, k: int) -> torch.Tensor:
    """Centred moving average of width k (k+1 if k is even) over ``[B, L]``; zero-padded edges count (spec 4.2).

    ``F.avg_pool1d(kernel, stride=1, padding=kernel // 2)`` with the default ``count_include_pad=True``,
    as ``ray_trainer.py:344-367``; k == 1 leaves the entropy unchanged.
    """
    if k == 1:
        return entropy
    kernel = k if k % 2 else k + 1
    return F.avg_pool1d(entropy[:, None].float(), kernel, stride=1, padding=kernel // 2)[:, 0]


def chunk_starts(attention_mask: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(starts [B, c], chunk_len [B])``: c chunks of ``len // c`` real tokens from the first real token.

    The trailing ``len % c`` tokens are never a chunk start (spec 4.3). Rows must be left-padded.
    """
    first = attention_mask.long().argmax(dim=1)
    chunk_len = attention_mask.long().sum(dim=1) // c
    if bool((chunk_len == 0).any()):
        raise ValueError(f"a sequence has fewer real tokens than c={c} chunks")
    starts = first[:, None] + chunk_len[:, None] * torch.arange(c, device=attention_mask.device)
    return starts, chunk_len


def pick_in_chunks(
    scores: torch.Tensor,
    starts: torch.Tensor,
    chunk_len: torch.Tensor,
    sampling: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """Offset t within each chunk, ``[B, c]``.

    entropy/uniform: t ~ Categorical(softmax(scores over the chunk)) with tau = 1 (uniform passes all-equal
    scores); argmax/argmin: the extreme of the raw scores (spec 4.3).
    """
    offsets = torch.empty_like(starts)
    for row in range(starts.shape[0]):
        span = starts[row, :, None] + torch.arange(int(chunk_len[row]), device=starts.device)
        window = scores[row, span]  # [c, chunk_len]
        if sampling == "argmax":
            offsets[row] = window.argmax(dim=1)
        elif sampling == "argmin":
            offsets[row] = window.argmin(dim=1)
        else:
            probs = window.float().softmax(dim=1)
            offsets[row] = torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0].to(starts.device)
    return offsets


def select_positions(
    entropy: torch.Tensor,
    attention_mask: torch.Tensor,
    c: int,
    k: int,
    sampling: str,
    margin: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rollout starts r ``[B, c]`` (the prefix is tokens ``[0, r)``; the rollout predicts tokens ``r..r+k-1``).

    ``entropy[:, j]`` is the NTP entropy of the prediction of token j+1, so the sampled position t is the last
    prefix token and the uncertain prediction is the first rollout token (spec 4.3, 10.8). Then
    ``r = chunk_start + t + 1`` clamped to ``[first real + margin, L - margin]`` (``ray_trainer.py:401``, spec 10.9).
    """
    length = attention_mask.shape[1]
    first = attention_mask.long().argmax(dim=1)
    if bool((first + margin > length - margin).any()):
        raise ValueError(f"a sequence is too short for margin={margin} at padded length {length}")
    if sampling == "entropy":
        scores = smooth_entropy(entropy, k)
    elif sampling == "uniform":
        scores = torch.ones_like(entropy)
    else:
        scores = entropy  # argmax / argmin use the raw entropy (spec 4.2)
    starts, chunk_len = chunk_starts(attention_mask, c)
    r = starts + pick_in_chunks(scores, starts, chunk_len, sampling, generator) + 1
    return torch.maximum(torch.minimum(r, torch.full_like(r, length - margin)), first[:, None] + margin)
