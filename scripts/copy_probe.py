"""Does a tiny model learn to copy? Train it on random token sequences shown twice and print the loss of the
first showing (nothing to copy: ln V) and of the repeat (copyable) as training goes.

    python scripts/copy_probe.py --arch deltanet --vocab 128 --steps 500

The measurement behind README "Why the retrieval cells are 0"; its numbers (vocabulary, sequence length, heads,
tied or untied head) are in docs/design.md, "The tiny default".
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

import refine.models  # noqa: F401  (registers the Auto classes)
from refine.config import set_threads
from refine.models.tiny import tiny_config


def copy_losses(arch: str, vocab: int, length: int, batch: int, steps: int, lr: float, config: dict, every: int = 50):
    """Train a fresh tiny model for `steps` on sequences shown twice; yield (step, loss of the first showing,
    loss of the repeat) every `every` steps and at the last (seed 0)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, vocab, **config))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        x = torch.randint(1, vocab, (batch, length))
        ids = torch.cat([x, x], 1)
        loss = F.cross_entropy(model(input_ids=ids[:, :-1]).logits.transpose(1, 2), ids[:, 1:], reduction="none")
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        if step % every == 0 or step == steps - 1:
            yield step, loss[:, : length - 1].mean().item(), loss[:, length:].mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="deltanet", choices=["deltanet", "lact"])
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--length", type=int, default=32, help="tokens per sequence (shown twice)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--config", default="{}", help="JSON overrides of the tiny model config")
    a = p.parse_args()
    set_threads(1)  # the measurements above ran on one thread
    start = time.time()
    for step, first, repeat in copy_losses(a.arch, a.vocab, a.length, a.batch, a.steps, a.lr, json.loads(a.config)):
        print(f"step {step}: first {first:.2f}  repeat {repeat:.2f}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
