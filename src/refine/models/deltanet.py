"""DeltaNet language model with fla's module tree, parameter names and numerics, in pure PyTorch.

Module tree and config follow fla 0.6.0 (fla/models/delta_net/{configuration,modeling}_delta_net.py,
fla/layers/delta_net.py), so checkpoints interchange with fla's ``DeltaNetForCausalLM``. The per-token math
(fla/layers/delta_net.py:186-285): q, k, v = SiLU(causal short conv(x W)), q and k l2-normalised (eps 1e-6),
``beta = sigmoid(x W_b)``, the delta rule with scale ``K ** -0.5`` (:mod:`refine.ops.delta_rule`), a per-head fp32
RMSNorm ``o_norm`` and ``o_proj``; pre-norm blocks with a SwiGLU MLP (fla/modules/mlp.py:30-80).

Padding: fla drops pad tokens (varlen ``cu_seqlens``, fla/layers/utils.py:138-174). Here the layer input is zeroed
at pad positions before the projections (so pads add nothing to the short convs of real tokens) and ``beta`` is
zeroed there (so pads never write the state): real tokens get the same outputs for any amount of left padding.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig

from refine.models.base import (
    CheckpointedBlock,
    FastWeightPreTrainedModel,
    causal_lm_output,
    check_forward_kwargs,
    current_mask,
    resolve_cache,
)
from refine.models.cache import FastWeightCache
from refine.models.mlp import GatedMLP
from refine.ops.delta_rule import delta_rule
from refine.ops.rmsnorm import RMSNorm
from refine.ops.short_conv import ShortConvolution


class DeltaNetConfig(PretrainedConfig):
    """fla 0.6.0's ``DeltaNetConfig`` (same fields and defaults, configuration_delta_net.py:18-105).

    Kernel switches (CUDA only; the torch path runs on CPU and whenever a switch is off): ``fuse_norm`` - fla's
    Triton RMSNorm for every norm (fla uses it for ``o_norm`` always); ``fuse_swiglu`` - fla's ``swiglu_linear`` in
    the MLP; ``fuse_short_conv`` (added here; fla always runs its Triton conv) - fla's ``causal_conv1d``;
    ``fuse_linear_cross_entropy`` - the NTP loss fused with the LM head in training
    (:meth:`~refine.models.base.FastWeightPreTrainedModel.head_outputs`, on CPU too). ``attn_mode`` and
    ``fuse_cross_entropy`` are accepted and ignored (the delta-rule kernel is chosen by length and device);
    ``use_output_norm`` is stored but, as in fla, always on. Hybrid softmax-attention layers (``attn``), attention
    residuals (``attnres_block_size``), ``use_l2warp`` and q/k variants other than SiLU + l2 are not implemented.
    """

    model_type = "delta_net"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]

    def __init__(
        self,
        attn_mode: str = "chunk",
        hidden_size: int = 2048,
        expand_k: float = 1.0,
        expand_v: float = 1.0,
        use_gate: bool = False,
        use_short_conv: bool = True,
        allow_neg_eigval: bool = False,
        conv_size: int = 4,
        use_beta: bool = True,
        use_output_norm: bool = True,
        num_heads: int = 16,
        qk_norm: str = "l2",
        qk_activation: str = "silu",
        max_position_embeddings: int = 2048,
        hidden_ratio: int | None = 4,
        intermediate_size: int | None = None,
        hidden_act: str = "swish",
        num_hidden_layers: int = 24,
        norm_eps: float = 1e-6,
        attn: dict | None = None,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = False,
        initializer_range: float = 0.02,
        fuse_norm: bool = True,
        fuse_swiglu: bool = True,
        fuse_cross_entropy: bool = True,
        fuse_linear_cross_entropy: bool = False,
        fuse_short_conv: bool = True,
        use_l2warp: bool = False,
        vocab_size: int = 32000,
        attnres_block_size: int | None = None,
        **kwargs,
    ):
        self.attn_mode = attn_mode
        self.hidden_size = hidden_size
        self.expand_k = expand_k
        self.expand_v = expand_v
        self.use_gate = use_gate
        self.use_short_conv = use_short_conv
        self.allow_neg_eigval = allow_neg_eigval
        self.conv_size = conv_size
        self.use_beta = use_beta
        self.use_output_norm = use_output_norm
        self.num_heads = num_heads
        self.qk_norm = qk_norm
        self.qk_activation = qk_activation
        self.max_position_embeddings = max_position_embeddings
        self.hidden_ratio = hidden_ratio
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.num_hidden_layers = num_hidden_layers
        self.norm_eps = norm_eps
        self.attn = attn
        self.use_cache = use_cache
        self.initializer_range = initializer_range
        self.fuse_norm = fuse_norm
        self.fuse_swiglu = fuse_swiglu
        self.fuse_cross_entropy = fuse_cross_entropy
        self.fuse_linear_cross_entropy = fuse_linear_cross_entropy
        self.fuse_short_conv = fuse_short_conv
        self.use_l2warp = use_l2warp
        self.vocab_size = vocab_size
        self.attnres_block_size = attnres_block_size
        unsupported = {
            "attn": attn is not None,
            "attnres_block_size": attnres_block_size is not None,
            "use_l2warp": use_l2warp,
            "qk_norm": qk_norm != "l2",
            "qk_activation": qk_activation != "silu",
            "hidden_act": hidden_act != "swish",
        }
        for name, bad in unsupported.items():
            if bad:
                raise NotImplementedError(f"DeltaNetConfig.{name}={getattr(self, name)!r} is not implemented")
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


class DeltaNet(nn.Module):
    """One DeltaNet token mixer (fla's ``DeltaNet`` layer, fla/layers/delta_net.py:34-168 for the parameters)."""

    def __init__(self, config: DeltaNetConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_heads
        self.key_dim = round(config.hidden_size * config.expand_k)
        self.value_dim = round(config.hidden_size * config.expand_v)
        if self.key_dim % self.num_heads or self.value_dim % self.num_heads:
            raise ValueError("key and value dims must be divisible by num_heads")
        self.head_v_dim = self.value_dim // self.num_heads
        self.use_beta = config.use_beta
        self.allow_neg_eigval = config.allow_neg_eigval
        self.use_short_conv = config.use_short_conv
        self.use_gate = config.use_gate

        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.key_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.key_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.value_dim, bias=False)
        if self.use_beta:
            self.b_proj = nn.Linear(hidden, self.num_heads, bias=False)
        if self.use_short_conv:
            conv = {"kernel_size": config.conv_size, "activation": "silu", "fused": config.fuse_short_conv}
            self.q_conv1d = ShortConvolution(self.key_dim, **conv)
            self.k_conv1d = ShortConvolution(self.key_dim, **conv)
            self.v_conv1d = ShortConvolution(self.value_dim, **conv)
        if config.use_gate:
            self.g_proj = nn.Linear(hidden, self.value_dim, bias=False)
            self.o_norm = RMSNorm(self.head_v_dim, eps=config.norm_eps, fused=config.fuse_norm)
        else:  # fla keeps this norm's weight in fp32 (fla/layers/delta_net.py:166)
            self.o_norm = RMSNorm(self.head_v_dim, eps=config.norm_eps, dtype=torch.float32, fused=config.fuse_norm)
        self.o_proj = nn.Linear(self.value_dim, hidden, bias=False)

    def _qkv(self, x: torch.Tensor, state: dict, keep_state: bool) -> tuple[torch.Tensor, ...]:
        """SiLU(short conv(projection)) of q, k, v plus the new conv states (fla/layers/delta_net.py:196-225)."""
        projected = (self.q_proj(x), self.k_proj(x), self.v_proj(x))
        if not self.use_short_conv:
            return tuple(F.silu(p) for p in projected), {}
        outputs, conv_states = [], {}
        for name, p in zip("qkv", projected):
            y, conv_states[f"{name}_conv"] = getattr(self, f"{name}_conv1d")(p, state.get(f"{name}_conv"), keep_state)
            outputs.append(y)
        return tuple(outputs), conv_states if keep_state else {}

    def forward(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None, state: dict | None, keep_state: bool
    ) -> tuple[torch.Tensor, dict]:
        """``x [B, T, d]`` -> ``([B, T, d], new state)``; continues from the layer's cache entry ``state`` (None or
        empty: sequence start); the new state (``recurrent``, ``{q,k,v}_conv``) is empty unless ``keep_state``."""
        batch, length, _ = x.shape
        if attention_mask is not None:
            x = x * attention_mask[..., None].to(x.dtype)
        state = state or {}
        (q, k, v), conv_states = self._qkv(x, state, keep_state)
        q, k, v = (t.view(batch, length, self.num_heads, -1) for t in (q, k, v))
        beta = self.b_proj(x).sigmoid() if self.use_beta else x.new_ones(batch, length, self.num_heads)
        if self.allow_neg_eigval:  # fla/layers/delta_net.py:243-244
            beta = beta * 2.0
        if attention_mask is not None:
            beta = beta * attention_mask[..., None].to(beta.dtype)
        o, recurrent = delta_rule(
            q,
            k,
            v,
            beta,
            initial_state=state.get("recurrent"),
            output_final_state=keep_state,
            use_qk_l2norm=True,
        )
        gate = self.g_proj(x).view(batch, length, self.num_heads, -1) if self.use_gate else None
        o = self.o_proj(self.o_norm(o, gate).reshape(batch, length, self.value_dim))
        return o, {"recurrent": recurrent, **conv_states} if keep_state else {}


class DeltaNetBlock(CheckpointedBlock):
    """Pre-norm residual block: ``attn_norm -> attn``, ``mlp_norm -> mlp`` (fla modeling_delta_net.py:33-160)."""

    def __init__(self, config: DeltaNetConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.fuse_norm)
        self.attn = DeltaNet(config, layer_idx)
        self.mlp_norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.fuse_norm)
        self.mlp = GatedMLP(config.hidden_size, config.hidden_ratio, config.intermediate_size, config.fuse_swiglu)

    def block_forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None, state: dict | None, keep_state: bool):
        """``(output, new layer state)``; pure (see :class:`CheckpointedBlock`)."""
        attn, state = self.attn(self.attn_norm(x), attention_mask, state, keep_state)
        x = x + attn
        return x + self.mlp(self.mlp_norm(x)), state


class DeltaNetModel(nn.Module):
    """Embeddings, blocks and the final norm (fla ``DeltaNetModel``, modeling_delta_net.py:166-186)."""

    def __init__(self, config: DeltaNetConfig):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DeltaNetBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.norm_eps, fused=config.fuse_norm)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        cache: FastWeightCache | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Final-norm hidden states ``[B, T, d]`` and, if asked, fla's hidden-state tuple: the input of every
        layer followed by the final-norm output (fla/models/modeling_utils.py:190-215)."""
        hidden = self.embeddings(input_ids)
        all_hidden = []
        for i, layer in enumerate(self.layers):
            all_hidden.append(hidden)
            hidden, state = layer(hidden, attention_mask, None if cache is None else cache[i], cache is not None)
            if cache is not None:
                cache.update(i, **state)
        hidden = self.norm(hidden)
        return hidden, (*all_hidden, hidden) if output_hidden_states else None


class DeltaNetForCausalLM(FastWeightPreTrainedModel):
    """DeltaNet LM with fla's parameter names; forward/cache/generate contracts of docs/design.md."""

    config_class = DeltaNetConfig
    _no_split_modules: ClassVar[list[str]] = ["DeltaNetBlock"]
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: DeltaNetConfig):
        super().__init__(config)
        self.model = DeltaNetModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache: FastWeightCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
        past_key_values: FastWeightCache | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        logits_to_keep: int | None = 0,
        output_entropy: bool = False,
        **kwargs,
    ):
        """See docs/design.md. A given cache (``cache`` or ``past_key_values``) is continued and updated in place;
        ``use_cache=True`` starts a new one when none is given. Padding is expected on the left. Logits, loss and
        entropy: :meth:`FastWeightPreTrainedModel.head_outputs`."""
        check_forward_kwargs(kwargs)
        cache = resolve_cache(cache, past_key_values)
        if cache is None and use_cache:
            cache = self.new_cache()
        mask = current_mask(attention_mask, input_ids.shape[1])
        hidden, all_hidden = self.model(input_ids, mask, cache, output_hidden_states)
        if cache is not None:
            cache.advance(input_ids.shape[1], mask)
        logits, loss, entropy = self.head_outputs(
            hidden, labels, mask, num_items_in_batch, logits_to_keep or 0, output_entropy
        )
        return causal_lm_output(logits, loss, cache, all_hidden, entropy)
