"""`bench_refine`: wall time of a REFINE step against an SFT step and of the two rollout engines (CPU or GPU)."""

from __future__ import annotations

import dataclasses
import time

import torch
from transformers import AutoModelForCausalLM

from refine.models.base import ntp_loss
from refine.models.tiny import tiny_config
from refine.rl.config import RefineConfig
from refine.rl.step import refine_update


def _best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each ``fn()`` over ``repeats`` rounds after one warm-up round; the rounds interleave the
    functions so that a shared machine's load changes hit them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_refine(
    arch: str = "deltanet",
    seq_len: int = 2048,
    batch_size: int = 2,
    vocab_size: int = 512,
    cfg: RefineConfig | None = None,
    repeats: int = 3,
    device: str = "cpu",
    **model_overrides,
) -> dict:
    """Seconds per SFT step, per REFINE step with each engine, and the two ratios (goals: REFINE / SFT <= 1.6,
    recompute / snapshot >= 5), on a tiny fp32 model and one random batch of full-length sequences.

    Every step is forward, backward and an AdamW step (lr 0, so the weights, and every timed step, stay
    the same); REFINE steps take the whole batch as one mini-batch.
    """
    cfg = cfg or RefineConfig()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, vocab_size, **model_overrides)).float().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    ids = torch.randint(3, vocab_size, (batch_size, seq_len), device=device)
    mask = torch.ones_like(ids)

    def optimizer_step(loss: torch.Tensor) -> dict:
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {}

    def sft():
        optimizer_step(ntp_loss(model(ids, attention_mask=mask).logits, ids, mask))

    def refine(rollout: str):
        step_cfg = dataclasses.replace(cfg, rollout=rollout, mini_batch_size=None)
        return lambda: refine_update(model, ids, mask, step_cfg, optimizer_step, torch.Generator().manual_seed(0))

    result = {"arch": arch, "seq_len": seq_len, "batch_size": batch_size, "c": cfg.c, "k": cfg.k}
    fns = {"sft_s": sft, "refine_snapshot_s": refine("snapshot"), "refine_recompute_s": refine("recompute")}
    result.update(_best_times(fns, repeats))
    result["refine_over_sft"] = result["refine_snapshot_s"] / result["sft_s"]
    result["recompute_over_snapshot"] = result["refine_recompute_s"] / result["refine_snapshot_s"]
    return result


def format_result(result: dict) -> str:
    """One line per benchmark result, with the goals."""
    return (
        f"{result['arch']} (tiny, L={result['seq_len']}, B={result['batch_size']}, c={result['c']}, k={result['k']}): "
        f"SFT step {result['sft_s']:.2f} s, REFINE step snapshot {result['refine_snapshot_s']:.2f} s / "
        f"recompute {result['refine_recompute_s']:.2f} s; REFINE/SFT {result['refine_over_sft']:.2f}x (goal <= 1.6), "
        f"recompute/snapshot {result['recompute_over_snapshot']:.1f}x (goal >= 5)"
    )
