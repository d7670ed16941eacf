"""`refine bench`: micro-benchmarks of the kernels and models, and training steps at scale.

* ``kernels``: forward+backward time of ``delta_rule_recurrent`` vs ``delta_rule_chunked`` at one length (goal:
  >= 10x) and the peak memory of decoding one token after a short and a long context, per model in
  :data:`DECODE_MODELS` (a recurrent model should be flat);
* ``refine``: REFINE step vs SFT step and the two rollout engines on tiny models (``refine.rl.bench``);
* ``gpu``: steady-state SFT / REFINE steps of a named model config (``refine.bench.steps``; CPU with the tiny ones).

Each prints its numbers and with ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

from refine.config import set_threads

#: decode-memory model name -> the tiny config it runs (``refine.bench.models.MODELS``)
DECODE_MODELS = {"deltanet": "deltanet-tiny", "lact": "lact-tiny"}


def time_delta_rule(length: int, batch: int, heads: int, head_dim: int, repeats: int) -> dict:
    """Best-of-``repeats`` forward+backward seconds of the recurrent and chunked delta rule (fp32, CPU)."""
    import torch

    from refine.ops.delta_rule import delta_rule_chunked, delta_rule_recurrent

    gen = torch.Generator().manual_seed(0)
    shape = (batch, length, heads, head_dim)
    inputs = [torch.randn(*shape, generator=gen) for _ in range(3)] + [torch.rand(*shape[:3], generator=gen)]
    inputs = [t.requires_grad_() for t in inputs]

    def best(op) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            o, _ = op(*inputs, use_qk_l2norm=True)
            o.sum().backward()
            times.append(time.perf_counter() - start)
        return min(times)

    recurrent, chunked = best(delta_rule_recurrent), best(delta_rule_chunked)
    return {"length": length, "recurrent_s": recurrent, "chunked_s": chunked, "speedup": recurrent / chunked}


def decode_memory(name: str, contexts: list[int]) -> dict:
    """Peak bytes of one cached decode step of model ``name`` after each context length."""
    import torch
    from transformers import AutoModelForCausalLM

    from refine.bench.models import BENCH_VOCAB, MODELS
    from refine.bench.peak import peak_bytes

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_config(MODELS[DECODE_MODELS[name]]()).to(device).eval()
    peaks = {}
    with torch.no_grad():
        for length in contexts:
            context = torch.randint(0, BENCH_VOCAB, (1, length), device=device)
            cache = model(context, use_cache=True).cache
            peaks[length] = peak_bytes(functools.partial(model, context[:, -1:], cache=cache, use_cache=True))
    return {"model": name, "peak_bytes": peaks}


def run_kernels(args) -> int:

    set_threads(args.threads)
    timing = time_delta_rule(args.length, args.batch, args.heads, args.head_dim, args.repeats)
    print(
        f"delta rule fwd+bwd, L={timing['length']} (B={args.batch} H={args.heads} K=V={args.head_dim}, fp32): "
        f"recurrent {timing['recurrent_s']:.3f} s, chunked {timing['chunked_s']:.3f} s, "
        f"speed-up {timing['speedup']:.1f}x (goal >= 10x)"
    )
    memory = [decode_memory(name, args.contexts) for name in args.models]
    for row in memory:
        peaks = ", ".join(f"{v / 2**20:.3f} MiB after {k} tokens" for k, v in row["peak_bytes"].items())
        print(f"decode 1 token, {row['model']} (tiny): peak {peaks}")
    if args.json:
        Path(args.json).write_text(json.dumps({"delta_rule": timing, "decode_memory": memory}, indent=2) + "\n")
    return 0


def run_refine(args) -> int:

    from refine.bench.models import BENCH_VOCAB
    from refine.config import load_cfg
    from refine.rl.bench import bench_refine, format_result
    from refine.rl.config import RefineConfig

    set_threads(args.threads)
    cfg = RefineConfig.from_dict(load_cfg(args.cfg))
    results = [bench_refine(arch, args.length, args.batch, BENCH_VOCAB, cfg, args.repeats) for arch in args.archs]
    for result in results:
        print(format_result(result))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _csv(kind):
    """argparse type: a comma-separated list of ``kind``."""
    return lambda text: [kind(item) for item in text.split(",") if item]


def run_gpu(args) -> int:
    import torch

    from refine.bench.steps import H100_BF16_DENSE_FLOPS, StepBench, run_grid
    from refine.rl.config import RefineConfig

    set_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision or ("bf16" if device.startswith("cuda") else "fp32")
    refine = RefineConfig(c=args.c, k=args.k, n=args.n, rollout=args.engine)
    specs = [
        StepBench(
            model,
            length,
            method,
            args.micro_batch,
            precision,
            args.checkpointing,
            args.fused_ce,
            args.fused_modules,
            refine,
            args.warmup,
            args.steps,
            args.peak_flops or H100_BF16_DENSE_FLOPS,
            device,
        )
        for model in args.models
        for length in args.lengths
        for method in args.methods
    ]
    out = run_grid(specs, args.json, fallback=args.fallback)
    return 0 if all(row["status"] == "ok" for row in out["runs"]) else 1


def run_memory(args) -> int:
    from refine.bench.memory import Setup, memory_table

    setups = [
        Setup(args.micro_batch, length, method, args.checkpointing, args.fused_ce, args.precision, world)
        for length in args.lengths
        for method in args.methods
        for world in args.worlds
    ]
    rows = memory_table(args.models, setups, args.gpu_peaks)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="micro-benchmarks of the kernels and models")
    sub = p.add_subparsers(dest="bench", required=True, metavar="<bench>")
    k = sub.add_parser("kernels", help="chunked vs recurrent delta rule; decode memory vs context length")
    k.add_argument("--length", type=int, default=2048, help="sequence length of the delta-rule timing")
    k.add_argument("--batch", type=int, default=1)
    k.add_argument("--heads", type=int, default=4)
    k.add_argument("--head-dim", type=int, default=32)
    k.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    k.add_argument("--contexts", type=int, nargs="+", default=[1024, 16384], help="context lengths before decoding")
    k.add_argument("--models", nargs="+", default=list(DECODE_MODELS), choices=list(DECODE_MODELS))
    k.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    k.add_argument("--json", help="also write the numbers to this JSON file")
    k.set_defaults(func=run_kernels)
    r = sub.add_parser("refine", help="REFINE step vs SFT step, and the recompute vs snapshot rollout engine")
    r.add_argument("--archs", nargs="+", default=list(DECODE_MODELS), choices=list(DECODE_MODELS))
    r.add_argument("--length", type=int, default=2048)
    r.add_argument("--batch", type=int, default=2)
    r.add_argument("--repeats", type=int, default=3, help="best of this many interleaved runs (after a warm-up)")
    r.add_argument("--cfg", help="RefineConfig fields: a JSON object or a YAML/JSON file")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    r.add_argument("--json", help="also write the numbers to this JSON file")
    r.set_defaults(func=run_refine)
    g = sub.add_parser(
        "gpu", help="steady-state SFT / REFINE step of a named model: s, tokens/s, MFU, peak memory (CPU: tiny models)"
    )
    g.add_argument(
        "--models",
        type=_csv(str),
        default=["deltanet-1.3b"],
        help="comma list of deltanet-1.3b, lact-760m, deltanet-tiny, lact-tiny",
    )
    g.add_argument("--lengths", type=_csv(int), default=[16384], help="comma list of sequence lengths")
    g.add_argument("--methods", type=_csv(str), default=["sft", "refine"], help="comma list of sft, refine")
    g.add_argument("--micro-batch", type=int, default=2, help="sequences per step (paper: 2 per GPU)")
    g.add_argument(
        "--fallback",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on out-of-memory, retry with half the micro-batch (down to 1)",
    )
    g.add_argument("--precision", choices=["bf16", "fp32"], help="default: bf16 autocast on CUDA, fp32 on CPU")
    for flag, what in (
        ("checkpointing", "activation checkpointing per block"),
        ("fused-ce", "fused linear cross-entropy (config.fuse_linear_cross_entropy)"),
        ("fused-modules", "fla's fused norm / SwiGLU on CUDA (config.fuse_norm, fuse_swiglu)"),
    ):
        g.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=True, help=what)
    g.add_argument("--c", type=int, default=8, help="REFINE chunks per sequence")
    g.add_argument("--k", type=int, default=5, help="REFINE rollout length")
    g.add_argument("--n", type=int, default=1, help="REFINE rollouts per position")
    g.add_argument("--engine", default="snapshot", choices=["snapshot", "recompute"], help="REFINE rollout engine")
    g.add_argument("--warmup", type=int, default=1, help="warm-up steps (compile/autotune), timed apart")
    g.add_argument("--steps", type=int, default=3, help="steady steps; the median is reported")
    g.add_argument("--peak-flops", type=float, help="peak FLOP/s for the MFU (default: H100/H200 bf16 dense, 989e12)")
    g.add_argument("--device", help="default: cuda when available, else cpu")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    g.add_argument("--json", help="write the results here, rewritten after every measurement")
    g.set_defaults(func=run_gpu)
    m = sub.add_parser("memory", help="predicted peak memory per GPU (no GPU): static + activations fitted on CPU")
    m.add_argument("--models", type=_csv(str), default=["deltanet-1.3b", "lact-760m"], help="comma list (see gpu)")
    m.add_argument("--lengths", type=_csv(int), default=[4096, 8192, 16384], help="comma list of sequence lengths")
    m.add_argument("--methods", type=_csv(str), default=["sft", "refine"], help="comma list of sft, refine")
    m.add_argument("--worlds", type=_csv(int), default=[1, 8], help="comma list of GPU counts (> 1: FSDP)")
    m.add_argument("--micro-batch", type=int, default=2, help="sequences per GPU (paper: 2)")
    m.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    m.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=True)
    m.add_argument("--fused-ce", action=argparse.BooleanOptionalAction, default=True)
    m.add_argument("--gpu-peaks", help="a `refine bench gpu` JSON: rescale the activations to its measured peaks")
    m.add_argument("--json", help="also write the predictions to this JSON file")
    m.set_defaults(func=run_memory)
