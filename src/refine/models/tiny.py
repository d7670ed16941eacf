"""Model configs: tiny CPU configs per architecture and the paper's full-size configs."""

from __future__ import annotations

from transformers import PretrainedConfig

from refine.models.deltanet import DeltaNetConfig
from refine.models.lact import LaCTConfig

# ~0.6M parameters at vocab 512 (hidden 128, 2 layers, 4 heads of 32; MLP 512).
TINY_DELTANET = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_heads": 4,
    "conv_size": 4,
    "max_position_embeddings": 65536,
}

# fla-hub/delta_net-1.3B-100B (spec 2; the other fields are fla's DeltaNetConfig defaults).
DELTANET_1P3B = {
    "hidden_size": 2048,
    "num_hidden_layers": 24,
    "num_heads": 16,
    "vocab_size": 32000,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}

# ~0.7M parameters at vocab 512 (hidden 128, 2 layers, 4 attention heads of 32, 2 LaCT heads of 64, low-rank 8).
TINY_LACT = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attn_heads": 4,
    "num_lact_heads": 2,
    "lact_chunk_size": 64,
    "window_size": 64,
    "w0_w2_low_rank": 8,
    "use_momentum": True,
    "max_position_embeddings": 65536,
}

# LaCT-760M (LaCT lact_llm/configs/760M_lact_swiglu_nh4_fwlow_rank_momentum.json; spec 13.2; the other
# fields are LaCTConfig defaults). Which variant YunjinZhang/lact_llm holds (this or ``_muon``) is unverified.
LACT_760M = {
    "hidden_size": 1536,
    "num_hidden_layers": 24,
    "num_attn_heads": 24,
    "num_lact_heads": 4,
    "window_size": 2048,
    "lact_chunk_size": 2048,
    "w0_w2_low_rank": 32,
    "use_momentum": True,
    "use_muon": False,
    "rope_theta": 1e6,
    "max_position_embeddings": 32768,
    "vocab_size": 32000,
    "initializer_range": 0.02,
    "attention_bias": False,
}


def tiny_config(arch: str, vocab_size: int, **overrides) -> PretrainedConfig:
    """A tiny config of ``arch`` ("deltanet" or "lact") for CPU runs; ``overrides`` replace any field."""
    if arch == "deltanet":
        return DeltaNetConfig(**{**TINY_DELTANET, "vocab_size": vocab_size, **overrides})
    if arch == "lact":
        return LaCTConfig(**{**TINY_LACT, "vocab_size": vocab_size, **overrides})
    raise ValueError(f"unknown architecture {arch!r}")


def deltanet_1p3b_config(**overrides) -> DeltaNetConfig:
    """The config of fla-hub/delta_net-1.3B-100B (the paper's DeltaNet), with optional overrides."""
    return DeltaNetConfig(**{**DELTANET_1P3B, **overrides})


def lact_760m_config(**overrides) -> LaCTConfig:
    """The config of LaCT-760M (the paper's LaCT), with optional overrides."""
    return LaCTConfig(**{**LACT_760M, **overrides})
