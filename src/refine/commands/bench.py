"""`refine bench kernels`: speed of the chunked delta rule and memory of one-token decoding.

Prints (and with ``--json`` writes) two measurements:
* forward+backward time of ``delta_rule_recurrent`` vs ``delta_rule_chunked`` at one length (goal: >= 10x);
* peak memory allocated while decoding one token after a short and a long context, per model in
  :data:`DECODE_MODELS` (a recurrent model should be flat).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

BENCH_VOCAB = 512


def _tiny_deltanet():
    from refine.models.deltanet import DeltaNetForCausalLM
    from refine.models.tiny import tiny_config

    return DeltaNetForCausalLM(tiny_config("deltanet", BENCH_VOCAB))


def _tiny_lact():
    from refine.models.lact import LaCTForCausalLM
    from refine.models.tiny import tiny_config

    return LaCTForCausalLM(tiny_config("lact", BENCH_VOCAB))


#: model name -> builder of a tiny model (vocab BENCH_VOCAB) whose one-token decode memory is measured
DECODE_MODELS: dict[str, Callable[[], object]] = {"deltanet": _tiny_deltanet, "lact": _tiny_lact}


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


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by torch while ``fn()`` runs, above what existed before (CUDA: allocator stats;
    CPU: the torch profiler's memory timeline)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action, MemoryProfile  # the engine of export_memory_timeline

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, _, size in sorted(MemoryProfile(prof.profiler.kineto_results).timeline, key=lambda e: e[0]):
        current += size if action == Action.CREATE else -size if action == Action.DESTROY else 0
        peak = max(peak, current)
    return peak


def decode_memory(name: str, contexts: list[int]) -> dict:
    """Peak bytes of one cached decode step of model ``name`` after each context length."""
    import torch

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = DECODE_MODELS[name]().to(device).eval()
    peaks = {}
    with torch.no_grad():
        for length in contexts:
            context = torch.randint(0, BENCH_VOCAB, (1, length), device=device)
            cache = model(context, use_cache=True).cache
            peaks[length] = peak_bytes(functools.partial(model, context[:, -1:], cache=cache, use_cache=True))
    return {"model": name, "peak_bytes": peaks}


def run_kernels(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
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
    import torch

    from refine.config import load_cfg
    from refine.rl.bench import bench_refine, format_result
    from refine.rl.config import RefineConfig

    torch.set_num_threads(args.threads)
    cfg = RefineConfig.from_dict(load_cfg(args.cfg))
    results = [bench_refine(arch, args.length, args.batch, BENCH_VOCAB, cfg, args.repeats) for arch in args.archs]
    for result in results:
        print(format_result(result))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
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
