"""Steady-state training steps at a chosen scale: seconds, tokens/s, model FLOPs utilisation and peak memory.

A measurement builds the named model (seeded, on the device), a `Trainer` (fp32 master weights, AdamW, bf16
autocast when `precision` = bf16, activation checkpointing by its config switch) and one random batch of
`micro_batch` full-length sequences, then runs the project's own update, `TextUpdate` (`sft_update` or
`refine_step`), so what is timed is what training runs. The first `warmup` steps are timed apart (they include
Triton compilation and autotuning on CUDA); the steady steps after them give the step seconds.

Model FLOPs per step = 6 * N * B * L (forward 2, backward 4 per parameter and token; Kaplan et al. 2020, sec. 2.1;
MFU as in PaLM, Chowdhery et al. 2022, app. B) with N = the parameters used in matmuls (all but the input
embedding). Left out, so the MFU is a lower bound: the recurrence / window-attention term, the forward recomputed
under activation checkpointing, and a REFINE step's scan and branch forwards (it is counted with the same B * L
tokens as an SFT step). MFU = model FLOPs / (step seconds * `peak_flops`), by default the bf16 dense peak of an
H100/H200 SXM (989e12).

Peak memory: on CUDA `torch.cuda.max_memory_allocated` over the steady steps (weights, grads, AdamW states and
activations: everything torch allocated). On CPU: the bytes held before a step (weights and AdamW states) plus the
torch profiler's peak above them during one extra step (`peak.peak_bytes`), which is the same quantity.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import os
import statistics
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from refine.bench.models import bench_config
from refine.bench.peak import peak_bytes
from refine.models import register_auto_classes
from refine.ops.fla import TRITON_AUTOTUNE_CACHE
from refine.rl.config import RefineConfig
from refine.train.config import RunConfig
from refine.train.distributed import Dist
from refine.train.trainer import Trainer
from refine.train.updates import TextUpdate

H100_BF16_DENSE_FLOPS = 989e12  # NVIDIA H100/H200 SXM bf16 dense tensor-core peak (H100 datasheet)
METHODS = ("sft", "refine")


@dataclass(frozen=True)
class StepBench:
    """One measurement: model x length x method, with the switches."""

    model: str
    length: int
    method: str = "sft"
    micro_batch: int = 2
    precision: str = "bf16"  # bf16 (autocast over fp32 master weights) | fp32
    checkpointing: bool = True
    fused_ce: bool = True
    fused_modules: bool = True
    refine: RefineConfig = field(default_factory=RefineConfig)
    warmup: int = 1
    steps: int = 3
    peak_flops: float = H100_BF16_DENSE_FLOPS
    device: str = "cpu"
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # model config fields replacing the named config's

    def config(self):
        """The model config this measurement runs."""
        return bench_config(self.model, fused_ce=self.fused_ce, fused_modules=self.fused_modules, **self.overrides)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} ({' | '.join(METHODS)})")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError("steps must be >= 1 and warmup >= 0")

    def describe(self) -> dict:
        """The JSON fields that identify this measurement."""
        out = dataclasses.asdict(self)
        out["refine"] = {k: out["refine"][k] for k in ("c", "k", "n", "rollout")}
        return out


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matmuls: all but the input embedding (a lookup), unless it is tied."""
    embedding = model.get_input_embeddings().weight
    tied = any(p is embedding for p in model.get_output_embeddings().parameters())
    return sum(p.numel() for p in model.parameters() if tied or p is not embedding)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _held_bytes(trainer: Trainer) -> int:
    """Bytes of the weights, gradients and optimizer states that live between steps."""
    tensors = [p for p in trainer.model.parameters()] + [p.grad for p in trainer.model.parameters()]
    tensors += [v for state in trainer.optimizer.state.values() for v in state.values()]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def measure(spec: StepBench, progress=lambda key, seconds: None) -> dict:
    """Time ``spec``'s warm-up and steady steps; returns the numbers (see the module docstring).
    ``progress(key, seconds)`` is called after each step (key ``warmup_s`` or ``steady_s``), so a caller can keep
    the times of a run that is killed before it ends."""
    device = torch.device(spec.device)
    torch.manual_seed(spec.seed)
    began = time.perf_counter()
    config = spec.config()
    register_auto_classes()  # an fla import since the last build may have registered fla's classes over ours
    with device:
        model = AutoModelForCausalLM.from_config(config).float()
    run = RunConfig(
        micro_batch_size=spec.micro_batch,
        precision=spec.precision,
        gradient_checkpointing=spec.checkpointing,
        fused_linear_ce=spec.fused_ce,
    )
    trainer = Trainer(model, run, Dist(device=device), seed=spec.seed, total_steps=spec.warmup + spec.steps + 1)
    update = TextUpdate(spec.method, spec.refine)
    gen = torch.Generator().manual_seed(spec.seed)
    ids = torch.randint(3, config.vocab_size, (spec.micro_batch, spec.length), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    setup_s = time.perf_counter() - began

    def step(key: str | None = None) -> float:
        _sync(device)
        start = time.perf_counter()
        with trainer.autocast():
            update(trainer, batch)
        _sync(device)
        seconds = time.perf_counter() - start
        if key:
            progress(key, seconds)
        return seconds

    warmup_s = [step("warmup_s") for _ in range(spec.warmup)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steady_s = [step("steady_s") for _ in range(spec.steps)]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        held = _held_bytes(trainer)
        peak = held + peak_bytes(step, device)
    seconds = statistics.median(steady_s)
    tokens = spec.micro_batch * spec.length
    n_params = matmul_params(model)
    flops = 6 * n_params * tokens
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "matmul_params": n_params,
        "checkpointing_active": any(getattr(m, "gradient_checkpointing", False) for m in model.modules()),
        "setup_s": setup_s,
        "warmup_s": warmup_s,
        "steady_s": steady_s,
        "step_s": seconds,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / seconds,
        "model_flops_per_step": flops,
        "mfu": flops / (seconds * spec.peak_flops),
        "peak_bytes": peak,
        "peak_gib": peak / 2**30,
    }


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def environment(device: str) -> dict:
    """Versions and the device, for the JSON header."""
    from importlib.metadata import PackageNotFoundError, version

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    env.update({k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "TRITON_CACHE_DIR", TRITON_AUTOTUNE_CACHE)})
    for package in ("transformers", "triton", "flash-linear-attention"):
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            env[package] = None
    if torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def run_grid(specs: list[StepBench], json_path: Path | str | None = None, fallback: bool = True, echo=None) -> dict:
    """Run each measurement in turn, guarded: an error or OOM is recorded (``status`` ok | oom | error) and the
    next one still runs; with ``fallback`` an OOM retries with half the micro-batch, down to 1. The JSON is
    rewritten after every change (a running measurement shows as ``running`` with the step times it has so far, and
    each step is echoed), so a killed run keeps the rest."""
    echo = echo or functools.partial(print, flush=True)  # flushed: a log read after a kill shows the last step
    device = specs[0].device if specs else "cpu"
    out = {"environment": environment(device), "runs": []}

    def flush() -> None:
        out["environment"] = environment(device)  # as it is now: importing fla sets TRITON_CACHE_AUTOTUNING
        if json_path:
            tmp = Path(f"{json_path}.tmp")
            tmp.write_text(json.dumps(out, indent=2) + "\n")
            tmp.replace(json_path)

    for spec in specs:
        while True:
            row = {**spec.describe(), "status": "running"}
            out["runs"].append(row)
            flush()

            def progress(key: str, seconds: float, row=row) -> None:
                row.setdefault(key, []).append(seconds)
                flush()
                echo(f"  {key[:-2]} step {len(row[key])}: {seconds:.3f} s")

            try:
                row.update(measure(spec, progress), status="ok")
            except Exception as error:  # noqa: BLE001 - one failed measurement must not stop the rest
                row.update(status="oom" if is_oom(error) else "error", error=f"{type(error).__name__}: {error}")
                row["traceback"] = traceback.format_exc(limit=-8)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            flush()
            echo(format_row(row))
            if row["status"] == "oom" and fallback and spec.micro_batch > 1:
                spec = dataclasses.replace(spec, micro_batch=spec.micro_batch // 2)
                continue
            break
    return out


def format_row(row: dict) -> str:
    """One readable line per measurement."""
    switches = ", ".join(
        f"{name} {'on' if row[key] else 'off'}"
        for name, key in (("ckpt", "checkpointing"), ("fused CE", "fused_ce"), ("fused modules", "fused_modules"))
    )
    head = f"{row['model']} {row['method']} L={row['length']} B={row['micro_batch']} {row['precision']} ({switches})"
    if row["method"] == "refine":
        r = row["refine"]
        head += f" c={r['c']} k={r['k']} n={r['n']} {r['rollout']}"
    if row["status"] != "ok":
        return f"{head}: {row['status'].upper()} {row.get('error', '')}"
    warm = " + ".join(f"{s:.1f}" for s in row["warmup_s"]) or "none"
    return (
        f"{head}: step {row['step_s']:.3f} s, {row['tokens_per_s']:,.0f} tokens/s, MFU {100 * row['mfu']:.1f}%, "
        f"peak {row['peak_gib']:.2f} GiB; warm-up {warm} s"
        + ("" if row["checkpointing_active"] or not row["checkpointing"] else " [checkpointing not supported]")
    )
