"""The scan of a batch: per-position NTP entropy, final hidden states and NTP loss (spec 4.1, 4.9)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from refine.models.base import ntp_loss
from refine.models.cache import FastWeightCache


@dataclass
class Scan:
    """``entropy [B, L]`` (nats; position j predicts token j+1) and ``hidden [B, L, d]`` (``hidden_states[-1]``),
    both detached; ``ntp``: the token-mean NTP loss (with its graph when the scan ran with gradient);
    ``checkpoints``: position p -> the cache after tokens ``[0, p)`` (p = 0 maps to None)."""

    entropy: torch.Tensor
    hidden: torch.Tensor
    ntp: torch.Tensor
    checkpoints: dict = field(default_factory=dict)

    @staticmethod
    def cat(scans: list[Scan]) -> Scan:
        """The scans of consecutive row blocks as one, for the rollouts (same length and checkpoint positions);
        ``ntp`` is the first block's."""
        first = scans[0]
        return Scan(
            entropy=torch.cat([s.entropy for s in scans]),
            hidden=torch.cat([s.hidden for s in scans]),
            ntp=first.ntp,
            checkpoints={
                p: None if cache is None else FastWeightCache.cat([s.checkpoints[p] for s in scans])
                for p, cache in first.checkpoints.items()
            },
        )


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp(z) - sum softmax(z) * z`` over the last dim (``utils/torch_functional.py:145-149``)."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (logits.softmax(dim=-1) * logits).sum(dim=-1)


def scan(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    checkpoint_every: int | None = None,
) -> Scan:
    """One forward of the policy over the left-padded batch at temperature 1 (``dp_actor.py:299-343``); with
    gradient when grad mode is on (then ``ntp`` and the checkpoints keep their graph).

    With ``checkpoint_every`` the forward runs in segments of that many positions and keeps the cache at each
    segment end (the same values: a segmented forward continues the sequence exactly).
    """
    length = input_ids.shape[1]
    step = checkpoint_every or length
    cache, checkpoints, logits, hidden = None, {0: None}, [], []
    for start in range(0, length, step):
        end = min(start + step, length)
        out = model(
            input_ids[:, start:end], attention_mask=attention_mask[:, start:end], cache=cache,
            use_cache=checkpoint_every is not None, output_hidden_states=True,
        )  # fmt: skip
        logits.append(out.logits)
        hidden.append(out.hidden_states[-1].detach())
        cache = out.cache
        if checkpoint_every is not None and end < length:
            # fork() makes new tensors and dicts: later segments do not change this snapshot
            checkpoints[end] = cache.fork(torch.arange(input_ids.shape[0], device=input_ids.device))
    logits = torch.cat(logits, dim=1)
    return Scan(
        entropy=entropy_from_logits(logits.detach()),
        hidden=torch.cat(hidden, dim=1),
        ntp=ntp_loss(logits, input_ids, attention_mask),
        checkpoints=checkpoints,
    )
