"""Common base of the fast-weight language models: output convention, NTP loss and an own cached ``generate``.

Generation runs through :class:`~refine.models.cache.FastWeightCache` only (one prefill forward, then one forward per
new token); transformers' ``GenerationMixin`` is not inherited and never runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from refine.models.cache import FastWeightCache
from refine.ops.linear_ce import IGNORE_INDEX, linear_cross_entropy, linear_entropy

# transformers 5.24 renamed the output/kwarg ``past_key_values`` to ``cache``; 5.6-5.23 only know the old name.
_CACHE_FIELD = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"


@dataclass
class FastWeightCausalLMOutput(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` whose cache reads as ``.cache`` and ``.past_key_values`` on every transformers 5.x,
    plus ``entropy [B, T]`` (fp32 nats of the next-token distribution, when asked with ``output_entropy``)."""

    entropy: torch.Tensor | None = None


if _CACHE_FIELD == "past_key_values":
    FastWeightCausalLMOutput.cache = property(lambda self: self.past_key_values)


def causal_lm_output(
    logits: torch.Tensor | None,
    loss: torch.Tensor | None = None,
    cache: FastWeightCache | None = None,
    hidden_states: tuple[torch.Tensor, ...] | None = None,
    entropy: torch.Tensor | None = None,
) -> FastWeightCausalLMOutput:
    """Build the forward output (logits fp32 or None; ``hidden_states[-1]`` is the final-norm output)."""
    return FastWeightCausalLMOutput(
        loss=loss,
        logits=None if logits is None else logits.float(),
        hidden_states=hidden_states,
        entropy=entropy,
        **{_CACHE_FIELD: cache},
    )


def resolve_cache(cache: FastWeightCache | None, past_key_values: FastWeightCache | None) -> FastWeightCache | None:
    """The cache passed under either name (``cache`` since transformers 5.24, ``past_key_values`` before)."""
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("pass the cache as `cache` or `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def current_mask(attention_mask: torch.Tensor | None, num_tokens: int) -> torch.Tensor | None:
    """The ``[B, T]`` mask of the current tokens from an HF mask ``[B, T]`` or ``[B, past + T]`` (last T columns)."""
    if attention_mask is None:
        return None
    if attention_mask.shape[1] < num_tokens:
        raise ValueError(f"attention_mask has {attention_mask.shape[1]} columns, fewer than {num_tokens} tokens")
    return attention_mask[:, -num_tokens:]


# HF forward kwargs callers may pass, with the values that change nothing here (dict output, no attentions).
_NEUTRAL_FORWARD_KWARGS = {"return_dict": (True, None), "output_attentions": (False, None)}


def check_forward_kwargs(kwargs: dict) -> None:
    """Accept HF forward kwargs at neutral values; reject anything else (silently ignoring it would be a bug)."""
    for name, value in kwargs.items():
        if value not in _NEUTRAL_FORWARD_KWARGS.get(name, ()):
            raise TypeError(f"unsupported forward argument {name}={value!r}")


def ntp_targets(labels: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, T]`` targets of positions ``0..T-1``: ``labels[:, t + 1]``, -100 where ignored (label -100, target
    masked out by ``attention_mask`` (last T columns), and the last position, which has no target)."""
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    mask = current_mask(attention_mask, labels.shape[1])
    return targets if mask is None else targets.masked_fill(F.pad(mask[:, 1:], (0, 1)) == 0, IGNORE_INDEX)


def _divide(per_row: torch.Tensor, targets: torch.Tensor, num_items: int | torch.Tensor | None) -> torch.Tensor:
    """``sum(per_row / num_items)`` for the summed cross-entropy of each row ``per_row [B]``: ``num_items`` (HF's
    ``num_items_in_batch``) is a number or per-row divisors ``[B]``; None divides by the number of real targets."""
    if num_items is None:
        num_items = (targets != IGNORE_INDEX).sum().clamp(min=1)
    return (per_row / num_items).sum()


def ntp_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-mean next-token cross-entropy.

    ``logits[:, t]`` predicts ``labels[:, t + 1]`` (labels are shifted here). Targets equal to -100 or at positions
    where ``attention_mask`` (last T columns) is 0 are ignored; with no target left the loss is 0. ``num_items``
    (HF's ``num_items_in_batch``: a number, or per-row divisors ``[B]``) replaces the number of real targets as
    the divisor, e.g. to sum the loss over pieces of a batch.
    """
    targets = ntp_targets(labels, attention_mask)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none")
    return _divide(ce.view(targets.shape).sum(dim=1), targets, num_items)


def fused_ntp_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`ntp_loss` of the logits ``hidden @ weight^T`` without materialising them (:mod:`refine.ops.linear_ce`;
    one call per row when ``num_items`` holds per-row divisors)."""
    targets = ntp_targets(labels, attention_mask)
    if isinstance(num_items, torch.Tensor) and num_items.dim() == 1:
        per_row = torch.stack([linear_cross_entropy(h, weight, t) for h, t in zip(hidden, targets)])
    else:
        per_row = linear_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten())[None]
    return _divide(per_row, targets, num_items)


def warp_logits(scores: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering, in the order of transformers' sampling warpers."""
    scores = scores / temperature
    if top_k:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # transformers TopPLogitsWarper: drop the low-probability tail whose total mass is <= 1 - top_p, keep >= 1.
        sorted_scores, order = torch.sort(scores, dim=-1)
        tail = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        tail[..., -1] = False
        scores = scores.masked_fill(tail.scatter(-1, order, tail), float("-inf"))
    return scores


def choose_tokens(scores: torch.Tensor, greedy: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Argmax of ``scores [B, V]`` (greedy) or one sample from ``softmax(scores)`` per row; returns ``[B]``."""
    if greedy:
        return scores.argmax(dim=-1)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)


class CheckpointedBlock(nn.Module):
    """A residual block that activation checkpointing can wrap, per block (transformers' convention:
    ``PreTrainedModel.gradient_checkpointing_enable`` sets ``gradient_checkpointing`` and
    ``_gradient_checkpointing_func`` on every module that has the flag).

    Subclasses implement :meth:`block_forward` as a pure function of its arguments: it returns the block output
    and the layer's new recurrent state and never writes a cache, so the recomputation in the backward repeats no
    side effect; the model writes the returned state into the cache outside the checkpointed call. Checkpointing
    acts only in train mode with gradient enabled; ``forward`` (not ``__call__``) is wrapped, so module hooks
    (e.g. FSDP2's) stay outside the checkpoint, as in transformers' ``GradientCheckpointingLayer``.
    """

    gradient_checkpointing = False
    _gradient_checkpointing_func = functools.partial(checkpoint, use_reentrant=False)

    def block_forward(self, *args):
        raise NotImplementedError

    def forward(self, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(self.block_forward, *args)
        return self.block_forward(*args)


class FastWeightPreTrainedModel(PreTrainedModel):
    """Base of DeltaNet and LaCT: HF save/load plus an own cached ``generate`` (see docs/design.md).

    Activation checkpointing per block (:class:`CheckpointedBlock`): ``gradient_checkpointing_enable()`` /
    ``gradient_checkpointing_disable()`` (``activation_checkpointing_*`` since transformers 5.25) and
    ``is_gradient_checkpointing``.
    """

    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    #: a cache of this model records the running attention mask (see FastWeightCache.track_attention_mask)
    cache_tracks_attention_mask = False

    @classmethod
    def can_generate(cls) -> bool:
        """True: ``generate`` is ours; this also gives the model a ``generation_config`` like HF generators."""
        return True

    # Subclasses hold `self.model.embeddings` and `self.lm_head` (fla's and LaCT's layout).
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def new_cache(self) -> FastWeightCache:
        """An empty cache for this model."""
        return FastWeightCache(self.config.num_hidden_layers, self.cache_tracks_attention_mask)

    def head_outputs(
        self,
        hidden: torch.Tensor,
        labels: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        num_items_in_batch: int | torch.Tensor | None,
        logits_to_keep: int,
        output_entropy: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """``(logits, loss, entropy)`` from the final-norm ``hidden [B, T, d]`` (see the forward contract).

        The fused path (``config.fuse_linear_cross_entropy``, labels given, train mode: fla's rule,
        modeling_delta_net.py) computes the loss in chunks fused with ``lm_head`` and returns no full logits: only
        the last ``logits_to_keep`` positions', None when it is 0. Otherwise the full logits give the loss and are
        returned, or their last ``logits_to_keep`` positions. ``entropy`` is computed in chunks from ``hidden``.
        """
        fused = labels is not None and self.training and getattr(self.config, "fuse_linear_cross_entropy", False)
        weight = self.lm_head.weight
        if fused:
            loss = fused_ntp_loss(hidden, weight, labels, attention_mask, num_items_in_batch)
            logits = self.lm_head(hidden[:, -logits_to_keep:]) if logits_to_keep else None
        else:
            logits = self.lm_head(hidden if labels is not None or not logits_to_keep else hidden[:, -logits_to_keep:])
            loss = None if labels is None else ntp_loss(logits, labels, attention_mask, num_items_in_batch)
            logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
        entropy = linear_entropy(hidden, weight) if output_entropy else None
        return logits, loss, entropy

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        do_sample: bool = False,
        temperature: float | None = 1.0,
        top_k: int | None = 0,
        top_p: float | None = 1.0,
        min_new_tokens: int = 0,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        stopping_criteria=None,
        generator: torch.Generator | None = None,
        **ignored,
    ) -> torch.LongTensor:
        """Greedy or sampled decoding through the recurrent cache; returns ``[B, T + new]`` (HF layout).

        ``max_new_tokens`` wins over ``max_length`` (total length; HF's default 20 when neither is given).
        ``min_new_tokens`` (or HF's total ``min_length``) suppresses EOS. A row finishes at EOS or when
        ``stopping_criteria(input_ids, scores)`` (a transformers ``StoppingCriteriaList``, e.g. lm-eval's) flags
        it; finished rows are padded with ``pad_token_id`` (default: the first EOS id) and decoding stops when all
        rows are finished. Prompts may be left-padded (``attention_mask`` 0 on pads). Other HF kwargs
        (``use_cache``, ...) are accepted and ignored.
        """
        _check_ignored(ignored)
        batch, prompt_len = input_ids.shape
        if max_new_tokens is None:
            max_new_tokens = (20 if max_length is None else max_length) - prompt_len
        if ignored.get("min_length"):  # HF's total-length form of min_new_tokens
            min_new_tokens = max(min_new_tokens, ignored["min_length"] - prompt_len)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        eos = _eos_ids(eos_token_id if eos_token_id is not None else self.config.eos_token_id, input_ids.device)
        if pad_token_id is None:
            pad_token_id = int(eos[0]) if eos.numel() else 0
        temperature = 1.0 if temperature is None else temperature
        greedy = not do_sample or temperature == 0  # lm-eval's temperature 0 means greedy
        if max_new_tokens <= 0:
            return input_ids

        tokens, unfinished = input_ids, torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        # the prefill's head on the last position alone: no [B, T, V] logits (1 GiB per 16K-token row at vocab 32K)
        out = self(input_ids, attention_mask=attention_mask, use_cache=True, logits_to_keep=1)
        for step in range(max_new_tokens):
            scores = out.logits[:, -1].to(torch.float32, copy=True)
            if step < min_new_tokens and eos.numel():
                scores[:, eos] = float("-inf")
            if not greedy:
                scores = warp_logits(scores, temperature, top_k, top_p)
            next_tokens = choose_tokens(scores, greedy, generator)
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad_token_id))
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
            unfinished &= ~torch.isin(next_tokens, eos)
            if stopping_criteria is not None:
                stop = torch.as_tensor(stopping_criteria(tokens, scores), device=tokens.device)
                unfinished &= ~stop.expand(batch)
            if not unfinished.any() or step == max_new_tokens - 1:
                break
            out = self(next_tokens[:, None], attention_mask=attention_mask, cache=out.cache, use_cache=True)
        return tokens


def _eos_ids(eos_token_id: int | list[int] | None, device: torch.device) -> torch.Tensor:
    """EOS ids as a 1-D long tensor (empty when there is none)."""
    ids = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


def _check_ignored(kwargs: dict) -> None:
    """Reject HF generation options whose ignoring would silently change the result."""
    unsupported = {
        "num_beams": 1,
        "num_return_sequences": 1,
        "return_dict_in_generate": False,
        "output_scores": False,
    }
    for name, default in unsupported.items():
        if kwargs.get(name, default) not in (default, None):
            raise NotImplementedError(f"generate() does not support {name}={kwargs[name]!r}")
