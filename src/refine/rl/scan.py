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


@torch.no_grad()
def scan(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Scan:
    """One forward of the policy over the left-padded batch at temperature 1, without gradient
    (``dp_actor.py:299-343``); the entropy comes from the model in chunks fused with the LM head, so no
    ``[B, L, V]`` logits are materialised (only the last position's are kept)."""
    out = model(
        input_ids, attention_mask=attention_mask, output_hidden_states=True, output_entropy=True, logits_to_keep=1
    )
    return Scan(out.entropy, out.hidden_states[-1])
