"""The model configs the benchmarks run, by name, and the benchmark switches that live in a model config."""

from __future__ import annotations

import functools
from collections.abc import Callable

from transformers import PretrainedConfig

from refine.models.tiny import deltanet_1p3b_config, lact_760m_config, tiny_config

BENCH_VOCAB = 512  # vocabulary of the tiny configs (random token ids; no tokenizer involved)

#: name -> builder of the model config: the paper's two models (models/tiny.py states their sources) and the
#: tiny CPU configs
MODELS: dict[str, Callable[[], PretrainedConfig]] = {
    "deltanet-1.3b": deltanet_1p3b_config,
    "lact-760m": lact_760m_config,
    "deltanet-tiny": functools.partial(tiny_config, "deltanet", BENCH_VOCAB),
    "lact-tiny": functools.partial(tiny_config, "lact", BENCH_VOCAB),
}


def bench_config(name: str, *, fused_ce: bool, fused_modules: bool, **overrides) -> PretrainedConfig:
    """The config of model ``name`` with the switches set: ``fused_ce`` -> ``fuse_linear_cross_entropy`` (the
    loss without full [B, L, V] logits), ``fused_modules`` -> ``fuse_norm`` and ``fuse_swiglu`` (fla's fused
    modules on CUDA); ``overrides`` replace any field."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    config = MODELS[name]()
    for key, value in {
        "fuse_linear_cross_entropy": fused_ce,
        "fuse_norm": fused_modules,
        "fuse_swiglu": fused_modules,
        **overrides,
    }.items():
        setattr(config, key, value)
    return config
