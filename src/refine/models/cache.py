"""Recurrent state of fast-weight models (the analogue of a KV cache).

A :class:`FastWeightCache` holds, per layer, a dict ``name -> Tensor`` whose tensors all carry the batch on dim 0
(e.g. DeltaNet: ``{"recurrent": [B, H, K, V], "q_conv": [B, D, W-1], ...}``). Tensors keep their autograd graph, so
a forward that continues from a cache is differentiable through the state (segmented forward == full forward).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch

LayerState = dict[str, torch.Tensor]


class FastWeightCache:
    """Per-layer recurrent state plus the number of tokens seen so far.

    Args:
        num_layers: number of layers (``states`` has one dict per layer; empty until the layer has run).
        track_attention_mask: keep the running ``[B, seen_tokens]`` 0/1 attention mask (for models whose state
            depends on which past tokens were padding, e.g. a sliding-window KV cache). When False (recurrent
            models that never write pads into the state) ``attention_mask`` stays None.
    """

    def __init__(self, num_layers: int, track_attention_mask: bool = False):
        self.states: list[LayerState] = [{} for _ in range(num_layers)]
        self.track_attention_mask = track_attention_mask
        self.attention_mask: torch.Tensor | None = None
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, layer_idx: int) -> LayerState:
        return self.states[layer_idx]

    def update(self, layer_idx: int, **tensors: torch.Tensor) -> None:
        """Replace (or add) the named state tensors of one layer, in a new dict: a layer state handed out before
        (e.g. kept by an activation checkpoint for its recomputation) keeps its values."""
        self.states[layer_idx] = {**self.states[layer_idx], **tensors}

    def advance(self, num_tokens: int, attention_mask: torch.Tensor | None = None) -> None:
        """Record ``num_tokens`` new positions; ``attention_mask`` is their ``[B, num_tokens]`` mask (None = real)."""
        if self.track_attention_mask and (attention_mask is not None or self.attention_mask is not None):
            ref = attention_mask if attention_mask is not None else self.attention_mask
            past = self.attention_mask
            if past is None:
                past = torch.ones(ref.shape[0], self.seen_tokens, dtype=torch.long, device=ref.device)
            new = attention_mask
            if new is None:
                new = torch.ones(ref.shape[0], num_tokens, dtype=torch.long, device=ref.device)
            self.attention_mask = torch.cat([past, new.to(torch.long)], dim=1)
        self.seen_tokens += num_tokens

    @property
    def batch_size(self) -> int | None:
        """Batch size of the stored state (None while empty)."""
        for layer in self.states:
            for tensor in layer.values():
                return tensor.shape[0]
        return None

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> FastWeightCache:
        """A shallow copy of this cache with ``fn`` applied to every tensor (states and mask)."""
        new = copy.copy(self)
        new.states = [{name: fn(t) for name, t in layer.items()} for layer in self.states]
        new.attention_mask = None if self.attention_mask is None else fn(self.attention_mask)
        return new

    def fork(self, index: torch.LongTensor) -> FastWeightCache:
        """A new cache whose row ``i`` is row ``index[i]`` of this one (select, reorder or repeat rows)."""
        return self._map(lambda t: t.index_select(0, index.to(t.device)))

    def repeat_interleave(self, repeats: int) -> FastWeightCache:
        """Each row repeated ``repeats`` times consecutively (e.g. a group of rollouts per prompt)."""
        return self.fork(torch.arange(self.batch_size).repeat_interleave(repeats))

    def detach(self) -> FastWeightCache:
        """A new cache with the same values cut from the autograd graph."""
        return self._map(torch.Tensor.detach)

    @classmethod
    def cat(cls, caches: Sequence[FastWeightCache]) -> FastWeightCache:
        """Concatenate caches along the batch.

        Caches may have seen different numbers of tokens: ``seen_tokens`` becomes the maximum and tracked masks are
        left-padded with zeros (the HF left-padding convention). State tensors must agree beyond dim 0; subclasses
        with length-dependent state override :meth:`_cat_layer`.
        """
        if not caches:
            raise ValueError("FastWeightCache.cat needs at least one cache")
        first = caches[0]
        if any(len(c) != len(first) for c in caches):
            raise ValueError("caches have different numbers of layers")
        new = copy.copy(first)
        new.states = [first._cat_layer([c.states[i] for c in caches]) for i in range(len(first))]
        new.seen_tokens = max(c.seen_tokens for c in caches)
        new.attention_mask = _cat_left_padded_masks(caches, new.seen_tokens)
        return new

    def _cat_layer(self, layers: Sequence[LayerState]) -> LayerState:
        """Batch-concatenate one layer's state dicts (all must hold the same names)."""
        names = layers[0].keys()
        if any(layer.keys() != names for layer in layers):
            raise ValueError("caches hold different state names for the same layer")
        return {name: torch.cat([layer[name] for layer in layers], dim=0) for name in names}


def _cat_left_padded_masks(caches: Sequence[FastWeightCache], length: int) -> torch.Tensor | None:
    """Concatenate the tracked masks of ``caches`` after left-padding each with zeros to ``length`` columns."""
    if all(c.attention_mask is None for c in caches):
        return None
    masks = []
    for c in caches:
        mask = c.attention_mask
        if mask is None:
            mask = torch.ones(c.batch_size or 0, c.seen_tokens, dtype=torch.long)
        masks.append(torch.nn.functional.pad(mask, (length - mask.shape[1], 0)))
    device = next(c.attention_mask.device for c in caches if c.attention_mask is not None)
    return torch.cat([m.to(device) for m in masks], dim=0)
