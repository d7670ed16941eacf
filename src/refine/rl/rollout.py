"""Rollouts from the selected positions: the `recompute` reference engine and the `snapshot` engine.

Both engines work on rows in the same sequence-major order (``seq_index``, ``positions``; spec 4.4) and give the
same results for a pad-invariant model. ``branch(model, ids, mask, seq_index, positions)`` prepares the rows of
some sequences (with gradient when grad mode is on); ``sample`` continues them into ``(tokens, old_logp, h_pred)``
without gradient; ``forward`` returns ``(ntp, logp)`` with gradient, where ``ntp`` is the NTP loss of the sequences
(``refine.rl.loss.ntp_term``, taken from the model's loss: their token mean, or the mean of micro-batch means with
``branch(..., ntp_split=)``) and ``logp`` the log-probs of the rollout tokens with the gradient flowing through the
whole prefix (HEAD behaviour, spec 4.9, 10.5). Branches made with gradient before an update serve both the sampling
and that update, so the pre-update work is done once.

Sampling matches ``FastWeightPreTrainedModel.generate`` draw for draw (one ``torch.multinomial`` over all rows per
step, EOS suppressed for all k steps, T = temperature, no top-k/top-p; spec 4.5), so both engines give the same
tokens from the same generator state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch.distributed.fsdp import FSDPModule

from refine.models.base import ntp_targets, warp_logits
from refine.models.cache import FastWeightCache
from refine.ops.linear_ce import IGNORE_INDEX
from refine.rl.grpo import group_ids
from refine.rl.loss import ntp_divisors
from refine.rl.scan import Scan


@dataclass
class Rollouts:
    """Rollout rows (``N = B * c * n``, sequence-major) and everything the loss and rewards need.

    ``positions`` are the rollout starts r (prefix = tokens ``[0, r)``); ``gt_ids``/``h_gt`` are the tokens and
    scan hidden states at ``r..r+k-1`` (``ray_trainer.py:410-411``); ``h_pred`` are the final hidden states at the
    k rollout tokens (``dp_actor.py:371-374``).
    """

    seq_index: torch.Tensor  # [N] row of the sequence in the batch
    positions: torch.Tensor  # [N]
    groups: torch.Tensor  # [N] GRPO group
    tokens: torch.Tensor  # [N, k]
    old_logp: torch.Tensor  # [N, k]
    h_pred: torch.Tensor  # [N, k, d]
    h_gt: torch.Tensor  # [N, k, d]
    gt_ids: torch.Tensor  # [N, k]

    def select(self, rows: torch.Tensor) -> Rollouts:
        """The rollouts at ``rows`` (a bool mask or indices)."""
        return Rollouts(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def token_logp(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probs of ``tokens [N, k]`` under ``logits [N, k, V] / temperature`` (``dp_actor.py:366-369``)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, tokens[..., None])[..., 0]


def eos_ids(model: torch.nn.Module) -> list[int]:
    """The model's EOS ids as a list (empty when it has none)."""
    eos = model.config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def pad_id(model: torch.nn.Module) -> int:
    """The pad id; EOS when the model has none (``utils/tokenizer.py:21-33``, spec 3.1)."""
    pad = model.config.pad_token_id
    return int(pad) if pad is not None else (eos_ids(model) or [0])[0]


def sample_tokens(logits: torch.Tensor, eos: list[int], temperature: float, generator: torch.Generator):
    """One draw per row from ``[N, V]`` logits with EOS suppressed, exactly as ``generate`` samples (spec 4.5)."""
    scores = logits.to(torch.float32, copy=True)
    scores[:, eos] = float("-inf")
    scores = warp_logits(scores, temperature, 0, 1.0)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)[:, 0]


@dataclass
class Prefixes:
    """The recompute engine's branches: the sequences and each row's prefix, right-aligned in an ``[N, L]`` pad
    buffer with the original left pads (spec 4.4)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prefix: torch.Tensor
    prefix_mask: torch.Tensor
    ntp_split: list[int] | None = None


class RecomputeEngine:
    """The official structure (spec 4.4-4.6, 4.9): each prefix re-encoded alone, right-aligned in a length-L
    pad buffer (original left pads included), k tokens drawn by the model's ``generate``, then a separate
    forward over prefix+rollout for old log-probs and ``h_pred``; the update re-runs that forward with
    gradient and the NTP loss on the full sequences. All rows of a call go in one batch (the code's
    micro-batches of 2 only bound memory; they would change the order of random draws)."""

    name = "recompute"

    @staticmethod
    def prefixes(input_ids, attention_mask, seq_index, positions, pad):
        """``(ids, mask) [N, L]``: tokens ``[0, r)`` of each row's sequence right-aligned, left-padded (spec 4.4)."""
        length = input_ids.shape[1]
        src = torch.arange(length, device=input_ids.device) - (length - positions[:, None])  # [N, L]
        keep = src >= 0
        src = src.clamp(min=0)
        ids = input_ids[seq_index[:, None], src].masked_fill(~keep, pad)
        mask = attention_mask[seq_index[:, None], src].masked_fill(~keep, 0)
        return ids, mask

    @staticmethod
    def policy(model, prefix, prefix_mask, tokens, temperature, hidden=False):
        """Forward over prefix+rollout: log-probs of the rollout tokens and (optionally) their final states."""
        k = tokens.shape[1]
        ids = torch.cat([prefix, tokens], dim=1)
        mask = torch.cat([prefix_mask, torch.ones_like(tokens)], dim=1)
        out = model(ids, attention_mask=mask, output_hidden_states=hidden, logits_to_keep=k + 1)
        logp = token_logp(out.logits[:, :-1], tokens, temperature)
        return logp, (out.hidden_states[-1][:, -k:] if hidden else None)

    def branch(self, model, input_ids, attention_mask, seq_index, positions, ntp_split=None) -> Prefixes:
        """The prefixes (no model call)."""
        prefix, mask = self.prefixes(input_ids, attention_mask, seq_index, positions, pad_id(model))
        return Prefixes(input_ids, attention_mask, prefix, mask, ntp_split)

    @torch.no_grad()
    def sample(self, model, branches: Prefixes, k, temperature, generator):
        prefix, mask = branches.prefix, branches.prefix_mask
        full = model.generate(
            prefix, attention_mask=mask, max_new_tokens=k, min_new_tokens=k, do_sample=True,
            temperature=temperature, top_k=0, top_p=1.0, eos_token_id=eos_ids(model),
            pad_token_id=pad_id(model), generator=generator,
        )  # fmt: skip
        tokens = full[:, prefix.shape[1] :]
        logp, h_pred = self.policy(model, prefix, mask, tokens, temperature, hidden=True)
        return tokens, logp, h_pred

    def forward(self, model, branches: Prefixes, tokens, temperature):
        ids, mask = branches.input_ids, branches.attention_mask
        divisors = ntp_divisors(ids, mask, branches.ntp_split)
        ntp = model(ids, attention_mask=mask, labels=ids, num_items_in_batch=divisors, logits_to_keep=1).loss
        return ntp, self.policy(model, branches.prefix, branches.prefix_mask, tokens, temperature)[0]


def segment_ends(model, positions: torch.Tensor) -> list[int]:
    """The snapshot trunk's cuts: the distinct rollout starts, or with an FSDP-sharded model their union over
    ranks, since every sharded forward is a collective that all ranks must run (an extra cut only splits a
    forward in two: same values up to round-off)."""
    starts = torch.unique(positions).tolist()
    if isinstance(model, FSDPModule) and tdist.get_world_size() > 1:
        gathered = [None] * tdist.get_world_size()
        tdist.all_gather_object(gathered, starts)
        starts = sorted(set().union(*gathered))
    return starts


@dataclass
class Trunk:
    """The snapshot engine's branches: the trunk's NTP loss and, for every rollout row in order, the cache at its
    start and the logits ``[N, V]`` that predict its first rollout token. ``SnapshotEngine.forward`` continues
    (and so advances) the cache: one update forward per trunk."""

    ntp: torch.Tensor
    cache: FastWeightCache
    logits: torch.Tensor


class SnapshotEngine:
    """One trunk, many branches (docs/design.md, "Design ideas" 2).

    ``branch`` runs the trunk once over the sequences in segments that end at the rollout starts and forks the
    recurrent state of the rows starting there (``FastWeightCache.fork``): the branches start from the trunk's
    state itself, with no re-encoding. ``sample`` continues a detached copy of the forks; with gradient, the
    trunk's logits give the NTP loss, the branches hang off the trunk graph, and one backward runs through the
    shared trunk. Every branch keeps the original layout, that of ``h_gt``.

    All branches run as one batch: ``FastWeightCache.cat`` of forks with different histories continues each row
    exactly as alone (DeltaNet: a shorter history acts as left-padded, which changes nothing there; LaCT: rows
    keep their own chunk phase and rotary positions, in either padding mode, spec 10.6).
    """

    name = "snapshot"

    @staticmethod
    def branch(model, input_ids, attention_mask, seq_index, positions, ntp_split=None) -> Trunk:
        """The trunk pass, segmented at the starts ``positions`` (each in ``[1, L)``). The NTP term sums each
        segment's loss from the model (fused with the LM head when the model's config asks for it, so the trunk
        never holds ``[B, L, V]`` logits) and the term of the segment's last position, whose target opens the
        next segment, all over the divisors of :func:`~refine.rl.loss.ntp_divisors`."""
        length = input_ids.shape[1]
        starts = segment_ends(model, positions)
        if starts[0] < 1 or starts[-1] >= length:
            raise ValueError(f"rollout starts must lie in [1, {length}), got {starts[0]}..{starts[-1]}")
        targets, divisors = ntp_targets(input_ids, attention_mask), ntp_divisors(input_ids, attention_mask, ntp_split)
        cache, ntp, rows, forks, first = None, 0.0, [], [], []
        for begin, end in zip([0, *starts], [*starts, length]):
            ids = input_ids[:, begin:end]
            out = model(
                ids,
                attention_mask=attention_mask[:, begin:end],
                cache=cache,
                use_cache=True,
                labels=ids,
                num_items_in_batch=divisors,
                logits_to_keep=1,
            )
            last = out.logits[:, -1]
            boundary = F.cross_entropy(last.float(), targets[:, end - 1], ignore_index=IGNORE_INDEX, reduction="none")
            ntp = ntp + out.loss + (boundary / divisors).sum()
            cache = out.cache
            if end < length:
                # fork() makes new tensors and dicts: later segments do not change this snapshot
                here = (positions == end).nonzero()[:, 0]
                if not len(here):  # another rank's start (sharded model)
                    continue
                rows.append(here)
                forks.append(cache.fork(seq_index[here]))
                first.append(last[seq_index[here]])
        order = torch.argsort(torch.cat(rows))  # from the trunk's order of starts back to the rows' order
        return Trunk(ntp=ntp, cache=type(cache).cat(forks).fork(order), logits=torch.cat(first)[order])

    @torch.no_grad()
    def sample(self, model, branches: Trunk, k, temperature, generator):
        cache, logits, eos = branches.cache.detach(), branches.logits.detach(), eos_ids(model)
        tokens, logp, h_pred = [], [], []
        for _ in range(k):
            token = sample_tokens(logits, eos, temperature, generator)  # all rows in one draw, as generate draws
            tokens.append(token)
            logp.append(token_logp(logits[:, None], token[:, None], temperature)[:, 0])
            out = model(token[:, None], cache=cache, use_cache=True, output_hidden_states=True)
            h_pred.append(out.hidden_states[-1][:, -1])
            cache, logits = out.cache, out.logits[:, -1]
        return torch.stack(tokens, dim=1), torch.stack(logp, dim=1), torch.stack(h_pred, dim=1)

    def forward(self, model, branches: Trunk, tokens, temperature):
        logits = branches.logits[:, None]
        if tokens.shape[1] > 1:
            logits = torch.cat([logits, model(tokens[:, :-1], cache=branches.cache, use_cache=True).logits], dim=1)
        return branches.ntp, token_logp(logits, tokens, temperature)


ENGINES = {engine.name: engine for engine in (RecomputeEngine(), SnapshotEngine())}


def rollout_rows(positions: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(seq_index, starts) [B * c * n]``: the rollout rows of starts ``positions [B, c]``, sequence-major."""
    num_seq, c = positions.shape
    seq_index = torch.arange(num_seq, device=positions.device).repeat_interleave(c * n)
    return seq_index, positions.flatten().repeat_interleave(n)


def collect_rollouts(
    engine, model, input_ids, attention_mask, positions, found: Scan, cfg, generator, branches=None
) -> Rollouts:
    """Sample ``cfg.n`` rollouts of ``cfg.k`` tokens from each start in ``positions [B, c]`` (spec 4.4-4.6).

    ``found`` is the scan of the batch: the ground-truth states are its hidden states, from the current policy in
    the original padding (spec 4.1). ``branches``: ``engine.branch`` results for consecutive blocks of sequences
    (each sampled in turn), or None for one block of all sequences.
    """
    num_seq, c = positions.shape
    device = input_ids.device
    seq_index, starts = rollout_rows(positions, cfg.n)
    if branches is None:
        with torch.no_grad():
            branches = [engine.branch(model, input_ids, attention_mask, seq_index, starts)]
    tokens, old_logp, h_pred = (
        torch.cat(parts)
        for parts in zip(*(engine.sample(model, b, cfg.k, cfg.temperature, generator) for b in branches))
    )
    at = (seq_index[:, None], starts[:, None] + torch.arange(cfg.k, device=device))
    return Rollouts(
        seq_index=seq_index,
        positions=starts,
        groups=group_ids(num_seq, c, cfg.n, device),
        tokens=tokens,
        old_logp=old_logp,
        h_pred=h_pred,
        h_gt=found.hidden[at],
        gt_ids=input_ids[at],
    )
