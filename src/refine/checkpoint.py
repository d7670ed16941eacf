"""Checkpoints: the one loader of a stage's HF checkpoint, and the run info a trained checkpoint carries.

A training stage stamps its identity and resolved REFINE settings (`refine.experiment`) into the model's
config as `refine_run`, so they travel inside `config.json`; evaluation copies them into its records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_KEY = "refine_run"


def load_pretrained(path: Path | str, device: str = "cpu", dtype: str = "float32"):
    """(model on `device` in `dtype`, tokenizer) of an HF checkpoint directory; pad = EOS when the tokenizer
    has none (spec 3.1)."""
    import torch
    from transformers import AutoModelForCausalLM

    import refine.models  # noqa: F401  (registers our model types)
    from refine.data.tokenizer import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype)).to(device)
    return model, load_tokenizer(path)


def stamp_run(model, fields: dict[str, Any]) -> None:
    """Record the training run's fields in the model config (saved with the checkpoint)."""
    setattr(model.config, RUN_KEY, dict(fields))


def run_info(path: Path | str) -> dict[str, Any]:
    """The run fields stamped into a checkpoint's config.json ({} for a checkpoint we did not train)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return {}
    try:
        return json.loads(config.read_text()).get(RUN_KEY) or {}
    except json.JSONDecodeError as err:
        raise ValueError(f"{config}: not valid JSON ({err})") from err
