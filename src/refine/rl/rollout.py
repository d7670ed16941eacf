"""Rollouts from the selected positions: the `recompute` reference engine and the `snapshot` engine.

Both engines take rows in the same sequence-major order (``seq_index``, ``positions``; spec 4.4) and give the
same results for a pad-invariant model: ``scan(model, ids, mask, c)`` gives the :class:`~refine.rl.scan.Scan`
that ``sample`` continues from; ``sample`` returns ``(tokens, old_logp, h_pred)`` without gradient, and
``forward`` (given a scan of the same sequences with gradient under the current weights; the recompute engine
ignores it) returns ``(ntp, logp)`` with gradient, where ``ntp`` is the token-mean NTP loss over the real tokens of
the given sequences (``refine.models.base.ntp_loss``) and ``logp`` the log-probs of the rollout tokens with the
gradient flowing through the whole prefix (HEAD behaviour, spec 4.9, 10.5).

Sampling matches ``FastWeightPreTrainedModel.generate`` draw for draw (one ``torch.multinomial`` over all rows per
step, EOS suppressed for all k steps, T = temperature, no top-k/top-p; spec 4.5), so both engines give the same
tokens from the same generator state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from refine.models.base import ntp_loss, warp_logits
from refine.rl.grpo import group_ids
from refine.rl.scan import Scan, scan


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


class RecomputeEngine:
    """The official structure (spec 4.4-4.6, 4.9): each prefix re-encoded alone, right-aligned in a length-L
    pad buffer (original left pads included), k tokens drawn by the model's ``generate``, then a separate
    forward over prefix+rollout for old log-probs and ``h_pred``; the update re-runs that forward with
    gradient and the NTP loss on the full sequences. All rows go in one call (the code's micro-batches of 2
    only bound memory; they would change the order of random draws)."""

    name = "recompute"
    fuses_scan = False

    @staticmethod
    def scan(model, input_ids, attention_mask, c):
        """The plain scan (spec 4.1)."""
        return scan(model, input_ids, attention_mask)

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
        out = model(ids, attention_mask=mask, output_hidden_states=hidden)
        logp = token_logp(out.logits[:, -k - 1 : -1], tokens, temperature)
        return logp, (out.hidden_states[-1][:, -k:] if hidden else None)

    @torch.no_grad()
    def sample(self, model, input_ids, attention_mask, found, seq_index, positions, k, temperature, generator):
        prefix, mask = self.prefixes(input_ids, attention_mask, seq_index, positions, pad_id(model))
        full = model.generate(
            prefix, attention_mask=mask, max_new_tokens=k, min_new_tokens=k, do_sample=True,
            temperature=temperature, top_k=0, top_p=1.0, eos_token_id=eos_ids(model),
            pad_token_id=pad_id(model), generator=generator,
        )  # fmt: skip
        tokens = full[:, prefix.shape[1] :]
        logp, h_pred = self.policy(model, prefix, mask, tokens, temperature, hidden=True)
        return tokens, logp, h_pred

    def forward(self, model, input_ids, attention_mask, seq_index, positions, tokens, temperature, found):
        ntp = ntp_loss(model(input_ids, attention_mask=attention_mask).logits, input_ids, attention_mask)
        prefix, mask = self.prefixes(input_ids, attention_mask, seq_index, positions, pad_id(model))
        return ntp, self.policy(model, prefix, mask, tokens, temperature)[0]


class SnapshotEngine:
    """One trunk, many branches (docs/architecture.md, key idea 2).

    The scan runs the trunk in segments of ``L // (2c)`` positions and keeps the cache at each segment end.
    A branch forks the last checkpoint before its start r (``FastWeightCache.fork``), runs the few tokens up
    to r (on average a quarter of an extra pass per sequence), then its rollout tokens. With gradient, the
    scan's logits give the NTP loss, the branches hang off the trunk graph through the checkpoints, and one
    backward runs through the shared trunk; every branch keeps the original layout, that of ``h_gt``.

    ``fuses_scan``: the scan of the first mini-batch, run with gradient before any update, is also its update
    forward (entropy, ``h_gt`` and NTP come from the same pre-update pass; the models have no dropout, so its
    eval mode changes nothing).

    Branches of a pad-invariant model (DeltaNet; LaCT with ``pad_invariant``) run as one batch
    (``FastWeightCache.cat`` treats a shorter history as left-padded, which changes nothing there). Under LaCT's
    official padding that would shift rotary positions, so there each start keeps its own batch (spec 10.6).
    """

    name = "snapshot"
    fuses_scan = True

    @staticmethod
    def scan(model, input_ids, attention_mask, c):
        """The scan with checkpoints every ``L // (2c)`` positions."""
        return scan(model, input_ids, attention_mask, checkpoint_every=max(1, input_ids.shape[1] // (2 * c)))

    @staticmethod
    def branches(model, input_ids, attention_mask, found, seq_index, positions):
        """``[rows, cache, logits]`` batches of branches positioned at their starts; ``logits [rows, V]`` predict
        the first rollout token. One batch per start, merged into one for a pad-invariant model."""
        branches = []
        for start in torch.unique(positions).tolist():
            rows = (positions == start).nonzero()[:, 0]
            seqs, repeat = torch.unique(seq_index[rows], return_inverse=True)
            begin = max(p for p in found.checkpoints if p < start)
            cache = found.checkpoints[begin]
            out = model(
                input_ids[seqs, begin:start], attention_mask=attention_mask[seqs, begin:start],
                cache=None if cache is None else cache.fork(seqs), use_cache=True,
            )  # fmt: skip
            branches.append([rows, out.cache.fork(repeat), out.logits[repeat, -1]])
        if len(branches) < 2 or not getattr(model.config, "pad_invariant", True):
            return branches
        rows, caches, logits = zip(*branches)
        return [[torch.cat(rows), type(caches[0]).cat(caches), torch.cat(logits)]]

    @torch.no_grad()
    def sample(self, model, input_ids, attention_mask, found, seq_index, positions, k, temperature, generator):
        branches = self.branches(model, input_ids, attention_mask, found, seq_index, positions)
        num, eos = positions.shape[0], eos_ids(model)
        tokens = torch.empty(num, k, dtype=torch.long, device=input_ids.device)
        logp = torch.empty(num, k, device=input_ids.device)
        h_pred = None
        for step in range(k):
            logits = torch.empty(num, branches[0][2].shape[-1], device=input_ids.device)
            for rows, _, next_logits in branches:
                logits[rows] = next_logits.float()
            # all rows in one draw, as generate draws them
            tokens[:, step] = sample_tokens(logits, eos, temperature, generator)
            logp[:, step] = token_logp(logits[:, None], tokens[:, step, None], temperature)[:, 0]
            for branch in branches:
                rows, cache, _ = branch
                out = model(tokens[rows, step, None], cache=cache, use_cache=True, output_hidden_states=True)
                last = out.hidden_states[-1][:, -1]
                if h_pred is None:
                    h_pred = last.new_empty(num, k, last.shape[-1])
                h_pred[rows, step] = last
                branch[1:] = [out.cache, out.logits[:, -1]]
        return tokens, logp, h_pred

    def forward(self, model, input_ids, attention_mask, seq_index, positions, tokens, temperature, found):
        logp = torch.empty(tokens.shape, device=input_ids.device)
        for rows, cache, first in self.branches(model, input_ids, attention_mask, found, seq_index, positions):
            logits = first[:, None]
            if tokens.shape[1] > 1:
                logits = torch.cat([logits, model(tokens[rows, :-1], cache=cache, use_cache=True).logits], dim=1)
            logp = logp.index_put((rows,), token_logp(logits, tokens[rows], temperature))
        return found.ntp, logp


ENGINES = {engine.name: engine for engine in (RecomputeEngine(), SnapshotEngine())}


def collect_rollouts(engine, model, input_ids, attention_mask, positions, found: Scan, cfg, generator) -> Rollouts:
    """Sample ``cfg.n`` rollouts of ``cfg.k`` tokens from each start in ``positions [B, c]`` (spec 4.4-4.6).

    ``found`` is ``engine.scan``'s result: the ground-truth states are its hidden states, from the current
    policy in the original padding (spec 4.1).
    """
    num_seq, c = positions.shape
    device = input_ids.device
    seq_index = torch.arange(num_seq, device=device).repeat_interleave(c * cfg.n)
    starts = positions.flatten().repeat_interleave(cfg.n)
    tokens, old_logp, h_pred = engine.sample(
        model, input_ids, attention_mask, found, seq_index, starts, cfg.k, cfg.temperature, generator
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
