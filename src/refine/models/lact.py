"""LaCT language model (LaCT-SwiGLU: sliding-window attention + a chunked fast-weight SwiGLU per layer).

Module tree and parameter names follow the official checkpoint (``YunjinZhang/lact_llm``; code: LaCT
``lact_llm/``, ReFINE's copy ``verl/verl/models/lact/``, cited below as ``layer:``/``modeling:``/``config:`` =
``layer_lact_swiglu.py``/``modeling_lact.py``/``configuration_lact_swiglu.py``), so its weights load
unchanged. Kernels: :mod:`refine.ops.lact_ttt` and :mod:`refine.ops.window_attn`. Unlike the official model
(whose generation re-runs the whole prefix, modeling:349,388) this one decodes through a recurrent
:class:`LaCTCache`.

Padding (spec 2, 10.6). ``pad_invariant=False`` (default) reproduces the official computation of a
padded batch: pads are written into the fast weights, update chunks are aligned to column 0 of the padded
tensor and rotary positions count pads (layer:262-278, 331-402); only the window attention skips pads
(layer:297-310). The same real tokens therefore get different hidden states under different amounts of left
padding. ``pad_invariant=True`` runs the fast weights of each row over its real tokens only (chunks aligned to
its first real token, rotary positions counting real tokens), so real-token outputs do not depend on the
padding.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers import initialization as init

from refine.models.base import (
    CheckpointedBlock,
    FastWeightPreTrainedModel,
    causal_lm_output,
    check_forward_kwargs,
    current_mask,
    resolve_cache,
)
from refine.models.cache import LayerState
from refine.models.lact_cache import (
    PENDING,
    LaCTCache,
    cache_entry,
    repeat_rows,
    stack_states,
    unstack_states,
    zip_states,
)
from refine.models.mlp import GatedMLP
from refine.ops.lact_ttt import FastWeightState, init_state, l2_normalize, lact_swiglu_continue
from refine.ops.rmsnorm import RMSNorm
from refine.ops.window_attn import keep_last, rotary_embedding, window_attention


class LaCTConfig(PreTrainedConfig):
    """``LaCTSWIGLUConfig`` (config:8-110): same ``model_type``, field names and defaults.

    Kernel switches as in the official model (CUDA only; the torch path runs on CPU and whenever a switch is off):
    ``fuse_norm`` - fla's Triton RMSNorm in the blocks (attention/MLP pre-norms, ``ttt_norm``, q/k norms),
    ``last_layer_fuse_norm`` - the same for the final norm (modeling: ``self.norm``), ``fuse_swiglu`` - fla's
    ``swiglu_linear`` in the MLP. ``fuse_cross_entropy`` and ``elementwise_affine`` are kept for checkpoint round
    trips and change nothing here. Added: ``fuse_linear_cross_entropy`` (fla's field: the NTP loss fused with the
    LM head in training, :meth:`~refine.models.base.FastWeightPreTrainedModel.head_outputs`), ``pad_invariant``
    (see the module docstring) and ``fw_base_lr``, the fast weights' base learning rate (a constant 1e-3 in the
    official layer, layer:35-40; a tiny model with short chunks may scale it).
    """

    model_type = "lact_swiglu"
    keys_to_ignore_at_inference = ("past_key_values",)

    def __init__(
        self,
        hidden_size: int = 2048,
        num_hidden_layers: int = 24,
        num_attn_heads: int = 32,
        num_lact_heads: int = 4,
        inter_multi: int = 1,
        qkv_bias: bool = False,
        attn_qk_norm: bool = False,
        lact_chunk_size: int = 2048,
        use_muon: bool = False,
        lr_dim: int = 1,
        qkv_silu: bool = True,
        lr_parameterization: str = "mamba",
        learnable_ttt_scale: bool = True,
        use_momentum: bool = True,
        ttt_loss_type: str = "dot_product",
        ttt_prenorm: bool = False,
        ttt_nope: bool = False,
        w0_w2_low_rank: int = -1,
        window_size: int = 2048,
        rope_theta: float = 10000.0,
        max_position_embeddings: int = 2048,
        hidden_ratio: int | None = 4,
        intermediate_size: int | None = None,
        hidden_act: str = "swish",
        initializer_range: float = 0.006,
        elementwise_affine: bool = True,
        norm_eps: float = 1e-6,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = False,
        fuse_norm: bool = True,
        last_layer_fuse_norm: bool = True,
        fuse_swiglu: bool = True,
        fuse_cross_entropy: bool = True,
        fuse_linear_cross_entropy: bool = False,
        vocab_size: int = 32000,
        fw_init_gain: float = 0.5,
        fw_base_lr: float = 1e-3,
        pad_invariant: bool = False,
        **kwargs,
    ):
        if ttt_loss_type != "dot_product":
            raise ValueError(f"ttt_loss_type {ttt_loss_type!r} is not supported (layer:212)")
        if lr_parameterization.lower() != "mamba":
            raise ValueError(f"lr_parameterization {lr_parameterization!r} is not supported (layer:373-376)")
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attn_heads = num_attn_heads
        self.num_lact_heads = num_lact_heads
        self.inter_multi = inter_multi
        self.qkv_bias = qkv_bias
        self.attn_qk_norm = attn_qk_norm
        self.lact_chunk_size = lact_chunk_size
        self.use_muon = use_muon
        self.lr_dim = lr_dim
        self.qkv_silu = qkv_silu
        self.lr_parameterization = lr_parameterization
        self.learnable_ttt_scale = learnable_ttt_scale
        self.use_momentum = use_momentum
        self.ttt_loss_type = ttt_loss_type
        self.ttt_prenorm = ttt_prenorm
        self.ttt_nope = ttt_nope
        self.w0_w2_low_rank = w0_w2_low_rank
        self.window_size = window_size
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.hidden_ratio = hidden_ratio
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.elementwise_affine = elementwise_affine
        self.norm_eps = norm_eps
        self.use_cache = use_cache
        self.fuse_norm = fuse_norm
        self.last_layer_fuse_norm = last_layer_fuse_norm
        self.fuse_swiglu = fuse_swiglu
        self.fuse_cross_entropy = fuse_cross_entropy
        self.fuse_linear_cross_entropy = fuse_linear_cross_entropy
        self.vocab_size = vocab_size
        self.fw_init_gain = fw_init_gain
        self.fw_base_lr = fw_base_lr
        self.pad_invariant = pad_invariant
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


class LowRankFastWeight(nn.Module):
    """Initial fast weight ``w_left @ w_right + 0.5 I`` per head, ``[heads, out, in]`` (layer:43-92)."""

    def __init__(self, num_heads: int, out_features: int, in_features: int, rank: int, init_gain: float):
        super().__init__()
        self.rank, self.init_gain = rank, init_gain
        self.w_left = nn.Parameter(torch.empty(num_heads, out_features, rank))
        self.w_right = nn.Parameter(torch.empty(num_heads, rank, in_features))

    def reset_parameters(self) -> None:
        """layer:74-77."""
        init.normal_(self.w_left, std=self.init_gain / math.sqrt(self.rank))
        init.normal_(self.w_right, std=self.init_gain / math.sqrt(self.w_right.shape[2]))

    def forward(self) -> torch.Tensor:
        w = self.w_left @ self.w_right
        return w + 0.5 * torch.eye(w.shape[1], w.shape[2], device=w.device, dtype=w.dtype)


class LaCTLayer(nn.Module):
    """``LaCTSWIGLULayer`` (layer:95-419): window attention + per-head fast-weight SwiGLU, then ``o_proj``."""

    def __init__(self, config: LaCTConfig):
        super().__init__()
        d = config.hidden_size
        self.config = config
        self.head_dim = d // config.num_attn_heads
        self.num_fw_heads = config.num_lact_heads
        self.fw_head_dim = d // config.num_lact_heads
        d_h = int(self.fw_head_dim * config.inter_multi)
        self.qkv = nn.Linear(d, 3 * d, bias=config.qkv_bias)
        if config.attn_qk_norm:
            self.q_norm, self.k_norm = (RMSNorm(d, eps=1e-5, fused=config.fuse_norm) for _ in range(2))
        self.o_proj = nn.Linear(d, d, bias=False)
        if config.w0_w2_low_rank > 0:
            rank, gain = config.w0_w2_low_rank, config.fw_init_gain
            self.w0 = LowRankFastWeight(self.num_fw_heads, d_h, self.fw_head_dim, rank, gain)
            self.w2 = LowRankFastWeight(self.num_fw_heads, d_h, self.fw_head_dim, rank, gain)
        else:
            self.w0 = nn.Parameter(torch.empty(self.num_fw_heads, d_h, self.fw_head_dim))
            self.w2 = nn.Parameter(torch.empty(self.num_fw_heads, d_h, self.fw_head_dim))
        self.w1 = nn.Parameter(torch.empty(self.num_fw_heads, self.fw_head_dim, d_h))
        self.lr_proj = nn.Linear(d, 3 * config.lr_dim * self.num_fw_heads)
        base_lr = config.fw_base_lr  # the official 1e-3 by default
        self.base_lr_inv = base_lr + math.log(-math.expm1(-base_lr))  # inv_softplus(base_lr), layer:35-40, :186-189
        self.qk_scale = nn.Parameter(torch.ones(d, 2))
        self.qk_offset = nn.Parameter(torch.zeros(d, 2))
        if config.learnable_ttt_scale:
            self.ttt_scale_proj = nn.Linear(d, self.num_fw_heads)
        # fla RMSNorm's default eps (layer:201)
        self.ttt_norm = RMSNorm(self.fw_head_dim, eps=1e-5, fused=config.fuse_norm)
        if config.use_momentum:
            self.momentum_proj = nn.Sequential(nn.Linear(d, self.num_fw_heads), nn.Sigmoid())

    def initial_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned initial fast weights ``(w0, w1, w2)``, ``[heads, ...]``."""
        low_rank = self.config.w0_w2_low_rank > 0
        return (self.w0() if low_rank else self.w0), self.w1, (self.w2() if low_rank else self.w2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        positions: torch.Tensor,
        past_mask: torch.Tensor | None,
        state: LayerState | None,
    ) -> tuple[torch.Tensor, LayerState]:
        """``x: [B, T, d]``; ``mask`` (current tokens) and ``past_mask`` (all cached tokens) are 0/1 or None
        (all real); ``positions: [B, T]`` rotary positions; ``state`` the layer's cache entry (None: sequence
        start)."""
        cfg = self.config
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if cfg.attn_qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        # per-channel scale and offset of the fast-weight q/k (layer:215-228, :255)
        fast_q = q * self.qk_scale[:, 0] + self.qk_offset[:, 0]
        fast_k = k * self.qk_scale[:, 1] + self.qk_offset[:, 1]

        attn, attn_state = self._attention(q, k, v, mask, positions, past_mask, state)
        fast, fast_state = self._fast_weights(x, fast_q, fast_k, v, mask, positions, state)
        return self.o_proj(attn + fast), {**attn_state, **fast_state}  # layer:413-414

    def _heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        return x.unflatten(-1, (-1, head_dim))

    def _attention(self, q, k, v, mask, positions, past_mask, state):
        """Rotary + sliding-window attention with the KV window cache (layer:258-327)."""
        cfg = self.config
        q = rotary_embedding(self._heads(q, self.head_dim), positions, cfg.rope_theta)
        k = rotary_embedding(self._heads(k, self.head_dim), positions, cfg.rope_theta)
        v = self._heads(v, self.head_dim)
        key_mask = mask
        if state:
            past_k = state["attn_k"]
            k, v = torch.cat([past_k, k], dim=1), torch.cat([state["attn_v"], v], dim=1)
            if mask is not None or past_mask is not None:
                past = keep_last(past_mask, past_k.shape[1])
                past = torch.ones_like(past_k[..., 0, 0], dtype=torch.long) if past is None else past
                now = torch.ones_like(q[..., 0, 0], dtype=torch.long) if mask is None else mask
                key_mask = torch.cat([past.to(now), now], dim=1)
        o = window_attention(q, k, v, cfg.window_size, key_mask)
        keep = cfg.window_size - 1
        return o.flatten(-2), {"attn_k": keep_last(k, keep), "attn_v": keep_last(v, keep)}

    def _fast_weights(self, x, fast_q, fast_k, fast_v, mask, positions, state):
        """Fast-weight branch (layer:331-411): output ``[B, T, d]`` and the fast-weight cache entries."""
        cfg = self.config
        batch, seq_len, _ = x.shape
        nh = self.num_fw_heads
        fq, fk, fv = (self._heads(t, self.fw_head_dim) for t in (fast_q, fast_k, fast_v))
        if cfg.qkv_silu:
            fq, fk, fv = F.silu(fq), F.silu(fk), F.silu(fv)
        fq, fk = l2_normalize(fq), l2_normalize(fk)
        if not cfg.ttt_nope:  # the attention's rotary, over attention-sized heads (layer:345-361)
            fq = rotary_embedding(fq.reshape(batch, seq_len, -1, self.head_dim), positions, cfg.rope_theta)
            fk = rotary_embedding(fk.reshape(batch, seq_len, -1, self.head_dim), positions, cfg.rope_theta)
        lr = F.softplus(self.lr_proj(x).float() + self.base_lr_inv)  # layer:372-378
        lr0, lr1, lr2 = lr.unflatten(-1, (nh, -1)).chunk(3, dim=-1)
        momentum = self.momentum_proj(x)[..., None] if cfg.use_momentum else None
        # per-token inputs [B, T, nh, c] -> [B, nh, T, c]
        inputs = tuple(
            None if t is None else t.reshape(batch, seq_len, nh, -1).transpose(1, 2)
            for t in (fq, fk, fv, lr0, lr1, lr2, momentum)
        )
        fw_state, lengths = self._load(state, batch)
        real = None if mask is None or not cfg.pad_invariant else mask.bool()
        if len(set(lengths)) == 1 and (real is None or bool(real.all())):
            out, fw_state = self._run(fw_state, inputs)
            lengths = [fw_state.pending_len] * batch
        else:  # each row on its own: another chunk phase, or (pad_invariant) only its real tokens
            out = fv.new_zeros(batch, nh, seq_len, self.fw_head_dim)
            rows = unstack_states(fw_state, lengths)
            for b in range(batch):
                cols = slice(None) if real is None else real[b].nonzero().squeeze(1)
                if real is not None and not real[b].any():
                    continue
                out_b, rows[b] = self._run(rows[b], tuple(None if t is None else t[b : b + 1, :, cols] for t in inputs))
                out[b][:, cols] = out_b[0].to(out.dtype)
            fw_state, lengths = stack_states(rows), [row.pending_len for row in rows]
        out = self.ttt_norm(out.transpose(1, 2))  # [B, T, nh, dfw], per-head norm (layer:405)
        if cfg.learnable_ttt_scale:
            out = out * F.silu(self.ttt_scale_proj(x))[..., None]  # layer:406-409
        return out.flatten(-2), cache_entry(fw_state, batch, lengths)

    def _run(self, state: FastWeightState, inputs) -> tuple[torch.Tensor, FastWeightState]:
        """The chunked fast-weight op on inputs ``[n, nh, T, c]`` (heads folded into rows)."""
        flat = tuple(None if t is None else t.flatten(0, 1) for t in inputs)
        out, state = lact_swiglu_continue(
            state, *flat, chunk_size=self.config.lact_chunk_size, use_muon=self.config.use_muon
        )
        return out.unflatten(0, (-1, self.num_fw_heads)), state

    def _load(self, entry: LayerState | None, batch: int) -> tuple[FastWeightState, list[int]]:
        """The batched fast-weight state (``batch * nh`` rows; views of the cache entry) and each row's
        pending length; the initial weights when ``entry`` is None."""
        cfg = self.config
        start = init_state(*self.initial_weights(), prenorm=cfg.ttt_prenorm, use_momentum=cfg.use_momentum)
        if not entry:
            return zip_states([start], lambda ts: repeat_rows(ts[0], batch)), [0] * batch
        lengths = entry["pending_len"].tolist()
        # equal lengths: cut the chunks to it; else keep them right-aligned and padded (unstack_states cuts each)
        keep = lengths[0] if len(set(lengths)) == 1 else None

        def rows(name: str, keep: int | None = None) -> torch.Tensor:
            t = entry[name] if keep is None else entry[name][:, :, entry[name].shape[2] - keep :]
            return t.flatten(0, 1)

        triple = lambda prefix: tuple(rows(f"{prefix}{i}") for i in range(3))
        pending = tuple(rows(f"pending_{n}", keep) if f"pending_{n}" in entry else None for n in PENDING)
        return FastWeightState(
            weights=triple("w"),
            norms=tuple(repeat_rows(n, batch) for n in start.norms),
            main=triple("main") if cfg.ttt_prenorm else None,
            momentum=triple("dw") if cfg.use_momentum else None,
            pending=pending if max(lengths) else None,
        ), lengths


class LaCTBlock(CheckpointedBlock):
    """Pre-norm block: ``h += attn(attn_norm(h)); h += mlp(mlp_norm(h))`` (modeling:33-113)."""

    def __init__(self, config: LaCTConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.fuse_norm)
        self.attn = LaCTLayer(config)
        self.mlp_norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.fuse_norm)
        self.mlp = GatedMLP(config.hidden_size, config.hidden_ratio, config.intermediate_size, config.fuse_swiglu)

    def block_forward(self, h, mask, positions, past_mask, state):
        """``(output, new layer state)``; pure (see :class:`CheckpointedBlock`)."""
        attn, state = self.attn(self.attn_norm(h), mask, positions, past_mask, state)
        h = h + attn
        return h + self.mlp(self.mlp_norm(h)), state


class LaCTModel(nn.Module):
    """Embeddings, blocks, final norm (modeling:184-303)."""

    def __init__(self, config: LaCTConfig):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(LaCTBlock(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.last_layer_fuse_norm)


class LaCTForCausalLM(FastWeightPreTrainedModel):
    """LaCT causal LM (modeling:306-443) with the forward/cache/generate contract of docs/design.md."""

    config_class = LaCTConfig
    _no_split_modules: ClassVar[list[str]] = ["LaCTBlock"]
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embeddings.weight"}
    cache_tracks_attention_mask = True

    def __init__(self, config: LaCTConfig):
        super().__init__(config)
        self.model = LaCTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """``LaCTPreTrainedModel._init_weights`` (modeling:127-180)."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, LowRankFastWeight):
            module.reset_parameters()
        elif isinstance(module, LaCTLayer):
            init.ones_(module.qk_scale)
            init.zeros_(module.qk_offset)
            if self.config.w0_w2_low_rank <= 0:
                init.normal_(module.w0, std=module.fw_head_dim**-0.5)
                init.normal_(module.w2, std=module.fw_head_dim**-0.5)
            init.normal_(module.w1, std=module.w1.shape[2] ** -0.5)

    def new_cache(self) -> LaCTCache:
        return LaCTCache(self.config.num_hidden_layers)

    def _positions(self, cache: LaCTCache | None, mask: torch.Tensor | None, batch: int, seq_len: int, device):
        """Rotary positions ``[B, T]``: padded columns, or (``pad_invariant``) earlier real-token counts."""
        steps = torch.arange(seq_len, device=device)
        if not self.config.pad_invariant:
            seen = 0 if cache is None else cache.next_positions()
            return (seen + steps).expand(batch, seq_len)
        past = torch.full((batch,), 0 if cache is None else cache.seen_tokens, device=device)
        if cache is not None and cache.attention_mask is not None:
            past = cache.attention_mask.sum(dim=1).to(device)
        now = steps.expand(batch, seq_len) if mask is None else (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        return past[:, None] + now

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache: LaCTCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
        past_key_values: LaCTCache | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        logits_to_keep: int | None = 0,
        output_entropy: bool = False,
        **kwargs,
    ):
        """Logits ``[B, T, V]`` (fp32), NTP loss over real targets, ``hidden_states`` (embeddings, each
        block's input, final-norm output: modeling:257-293) and the continued cache. A given cache is
        continued and updated in place; ``use_cache=True`` starts one when none is given. Logits, loss and
        entropy: :meth:`FastWeightPreTrainedModel.head_outputs`."""
        check_forward_kwargs(kwargs)
        cache = resolve_cache(cache, past_key_values)
        if use_cache and cache is None:
            cache = self.new_cache()
        batch, seq_len = input_ids.shape
        mask = current_mask(attention_mask, seq_len)
        positions = self._positions(cache, mask, batch, seq_len, input_ids.device)
        past_mask = None if cache is None else cache.attention_mask
        h = self.model.embeddings(input_ids)
        hidden = [h]
        for i, layer in enumerate(self.model.layers):
            h, state = layer(h, mask, positions, past_mask, None if cache is None else cache[i])
            if cache is not None:
                cache.update(i, **state)
            hidden.append(h)
        h = self.model.norm(h)
        hidden[-1] = h
        if cache is not None:
            cache.advance(seq_len, mask)
        logits, loss, entropy = self.head_outputs(
            h, labels, mask, num_items_in_batch, logits_to_keep or 0, output_entropy
        )
        return causal_lm_output(logits, loss, cache, tuple(hidden) if output_hidden_states else None, entropy)
