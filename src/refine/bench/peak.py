"""`peak_bytes`: the peak memory torch allocates while a function runs (CUDA allocator stats or CPU profiler)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def peak_bytes(fn: Callable[[], object], device: torch.device | str | None = None) -> int:
    """Peak bytes allocated by torch on ``device`` (default: CUDA when available) while ``fn()`` runs, above what
    existed before (CUDA: allocator stats; CPU: the torch profiler's memory timeline)."""
    if torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # the allocator's "[memory]" events: +bytes per allocation, -bytes per free (what export_memory_timeline reads)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak
