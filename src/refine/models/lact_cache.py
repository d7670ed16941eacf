"""LaCT's recurrent cache: the per-layer fast-weight state, its pending chunk and the attention window.

Converts between a layer's batched :class:`~refine.ops.lact_ttt.FastWeightState` (``batch * nh`` rows) and its
cache entry (``[B, nh, ...]`` tensors plus ``pending_len: [B]``), and batches caches with different histories.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from refine.models.cache import FastWeightCache, LayerState
from refine.ops.lact_ttt import FastWeightState


def repeat_rows(t: torch.Tensor, batch: int) -> torch.Tensor:
    """``[nh, ...] -> [batch * nh, ...]``, batch-major (``.repeat(batch_size, 1, 1)``, layer:363-370)."""
    return t.repeat(batch, *(1,) * (t.dim() - 1))


#: names of the pending-chunk tensors in the cache (order of FastWeightState.pending)
PENDING = ("k", "v", "lr0", "lr1", "lr2", "momentum")


def zip_states(states: list[FastWeightState], fn) -> FastWeightState:
    """Combine the matching tensors of several states with ``fn(list_of_tensors)`` (None stays None)."""

    def group(get):
        first = get(states[0])
        if first is None:
            return None
        return tuple(None if first[i] is None else fn([get(s)[i] for s in states]) for i in range(len(first)))

    return FastWeightState(
        weights=group(lambda s: s.weights),
        norms=group(lambda s: s.norms),
        main=group(lambda s: s.main),
        momentum=group(lambda s: s.momentum),
        pending=group(lambda s: s.pending),
    )


def unstack_states(state: FastWeightState, lengths: list[int]) -> list[FastWeightState]:
    """Per-row states (views) of a batched one whose pending chunks are right-aligned in a common width."""
    batch = len(lengths)
    rows = [zip_states([state], lambda ts, b=b: ts[0].chunk(batch, dim=0)[b]) for b in range(batch)]
    return [
        replace(
            row,
            pending=tuple(None if t is None else t[:, t.shape[1] - n :] for t in row.pending) if n else None,
        )
        for row, n in zip(rows, lengths)
    ]


def stack_states(rows: list[FastWeightState]) -> FastWeightState:
    """One batched state from per-row states (pending chunks right-aligned, zero-padded to one width)."""
    width = max(row.pending_len for row in rows)
    template = next((row.pending for row in rows if row.pending is not None), None)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, 0, width - t.shape[1], 0))

    rows = [
        replace(
            row,
            pending=tuple(
                None if ref is None else pad(ref[:, :0] if row.pending is None else row.pending[i])
                for i, ref in enumerate(template)
            ),
        )
        if template is not None
        else row
        for row in rows
    ]
    return zip_states(rows, lambda ts: torch.cat(ts, dim=0))


def cache_entry(state: FastWeightState, batch: int, lengths: list[int]) -> LayerState:
    """The layer's cache entry: ``[B, nh, ...]`` views of a batched state plus ``pending_len: [B]``."""
    rows = lambda t: t.unflatten(0, (batch, -1))
    entry = {f"w{i}": rows(w) for i, w in enumerate(state.weights)}
    if state.main is not None:
        entry.update({f"main{i}": rows(w) for i, w in enumerate(state.main)})
    if state.momentum is not None:
        entry.update({f"dw{i}": rows(w) for i, w in enumerate(state.momentum)})
    if state.pending is not None:
        entry.update({f"pending_{n}": rows(t) for n, t in zip(PENDING, state.pending) if t is not None})
    entry["pending_len"] = torch.tensor(lengths, device=state.weights[0].device)
    return entry


class LaCTCache(FastWeightCache):
    """Recurrent LaCT state, per layer (all ``[B, ...]``).

    ``w0, w1, w2``: fast weights after the last completed chunk (+ ``main0..2`` accumulators for
    ``ttt_prenorm``, ``dw0..2`` momentum buffers); ``pending_{k,v,lr0,lr1,lr2,momentum}``: the current chunk's
    inputs (``[B, nh, P, c]``, right-aligned, ``pending_len: [B]``); ``attn_k, attn_v``: the last
    ``window_size - 1`` rotated keys/values. The running attention mask (base class) masks cached pad keys and
    gives the pad-invariant positions. Apart from that mask (one int per past token, kept only when masks are
    passed) the size is flat in the sequence length. ``row_seen [B]`` (None while every row has seen
    ``seen_tokens``) counts each row's own tokens, pads included, after :meth:`cat` of caches with different
    histories: the official mode's rotary positions continue from it.
    """

    def __init__(self, num_layers: int):
        super().__init__(num_layers, track_attention_mask=True)
        self.row_seen: torch.Tensor | None = None

    def next_positions(self) -> torch.Tensor | int:
        """Each row's next rotary position in the official mode (an int while all rows agree)."""
        return self.seen_tokens if self.row_seen is None else self.row_seen[:, None]

    def advance(self, num_tokens: int, attention_mask: torch.Tensor | None = None) -> None:
        super().advance(num_tokens, attention_mask)
        if self.row_seen is not None:
            self.row_seen = self.row_seen + num_tokens

    def _map(self, fn):
        new = super()._map(fn)
        new.row_seen = None if self.row_seen is None else fn(self.row_seen)
        return new

    @classmethod
    def cat(cls, caches):
        new = super().cat(caches)
        if any(c.row_seen is not None or c.seen_tokens != new.seen_tokens for c in caches):
            device = next(iter(new.states[0].values())).device
            seen = [torch.full((c.batch_size,), c.seen_tokens) if c.row_seen is None else c.row_seen for c in caches]
            new.row_seen = torch.cat([t.to(device) for t in seen])
        return new

    def _cat_layer(self, layers):
        """Batch-concatenate, left-padding pending chunks and KV windows of different lengths with zeros.

        Rows keep their own chunk phase and rotary positions (``row_seen`` in the official mode, real-token counts
        under ``pad_invariant``), so each continues exactly as it would alone.
        """

        def pad_to(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
            return F.pad(t, (0, 0) * (t.dim() - dim - 1) + (size - t.shape[dim], 0))

        padded = []
        for layer in layers:
            entry = dict(layer)
            for name, dim in (("attn_k", 1), ("attn_v", 1), *((f"pending_{n}", 2) for n in PENDING)):
                if name in entry:
                    size = max(other[name].shape[dim] for other in layers)
                    entry[name] = pad_to(entry[name], dim, size)
            padded.append(entry)
        return super()._cat_layer(padded)
