"""The scan of a batch: per-position NTP entropy and final hidden states (spec 4.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Scan:
    """``entropy [B, L]`` (nats; position j predicts token j+1) and ``hidden [B, L, d]`` (``hidden_states[-1]``)."""

    entropy: torch.Tensor
    hidden: torch.Tensor

    @staticmethod
    def cat(scans: list[Scan]) -> Scan:
        """The scans of consecutive row blocks as one."""
        return Scan(torch.cat([s.entropy for s in scans]), torch.cat([s.hidden for s in scans]))


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp(z) - sum softmax(z) * z`` over the last dim (``utils/torch_functional.py:145-149``)."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (logits.softmax(dim=-1) * logits).sum(dim=-1)


@torch.no_grad()
def scan(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Scan:
    """One forward of the policy over the left-padded batch at temperature 1, without gradient
    (``dp_actor.py:299-343``)."""
    out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return Scan(entropy_from_logits(out.logits), out.hidden_states[-1])
