"""Common base of the fast-weight language models: output convention, NTP loss and an own cached ``generate``.

Generation runs through :class:`~refine.models.cache.FastWeightCache` only (one prefill forward, then one forward per
new token); transformers' ``GenerationMixin`` is not inherited and never runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from refine.models.cache import FastWeightCache

# transformers 5.24 renamed the output/kwarg ``past_key_values`` to ``cache``; 5.6-5.23 only know the old name.
_CACHE_FIELD = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"


@dataclass
class FastWeightCausalLMOutput(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` whose cache reads as ``.cache`` and ``.past_key_values`` on every transformers 5.x."""


if _CACHE_FIELD == "past_key_values":
    FastWeightCausalLMOutput.cache = property(lambda self: self.past_key_values)


def causal_lm_output(
    logits: torch.Tensor,
    loss: torch.Tensor | None = None,
    cache: FastWeightCache | None = None,
    hidden_states: tuple[torch.Tensor, ...] | None = None,
) -> FastWeightCausalLMOutput:
    """Build the forward output (logits fp32; ``hidden_states[-1]`` is the final-norm output)."""
    return FastWeightCausalLMOutput(
        loss=loss, logits=logits.float(), hidden_states=hidden_states, **{_CACHE_FIELD: cache}
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


# HF forward kwargs callers may pass, with the values that change nothing here (all logits, dict output).
_NEUTRAL_FORWARD_KWARGS = {"return_dict": (True, None), "output_attentions": (False, None), "logits_to_keep": (0, None)}


def check_forward_kwargs(kwargs: dict) -> None:
    """Accept HF forward kwargs at neutral values; reject anything else (silently ignoring it would be a bug)."""
    for name, value in kwargs.items():
        if value not in _NEUTRAL_FORWARD_KWARGS.get(name, ()):
            raise TypeError(f"unsupported forward argument {name}={value!r}")


def ntp_loss(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Token-mean next-token cross-entropy.

    ``logits[:, t]`` predicts ``labels[:, t + 1]`` (labels are shifted here). Targets equal to -100 or at positions
    where ``attention_mask`` (last T columns) is 0 are ignored; with no target left the loss is 0.
    """
    targets = labels[:, 1:]
    mask = current_mask(attention_mask, labels.shape[1])
    if mask is not None:
        targets = targets.masked_fill(mask[:, 1:] == 0, -100)
    total = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="sum")
    return total / (targets != -100).sum().clamp(min=1)


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


class FastWeightPreTrainedModel(PreTrainedModel):
    """Base of DeltaNet and LaCT: HF save/load plus an own cached ``generate`` (see docs/design.md)."""

    base_model_prefix = "model"
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
        out = self(input_ids, attention_mask=attention_mask, use_cache=True)
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
