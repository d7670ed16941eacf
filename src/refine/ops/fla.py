"""The gateway to fla: its CUDA kernels and fused modules, imported lazily on first use (on CUDA only).

Importing any part of fla also imports ``fla.models``, which registers fla's own "delta_net" classes with
transformers' Auto classes (fla/__init__.py); higher layers restore theirs through :data:`AFTER_IMPORT`.

Before the first import, :data:`TRITON_AUTOTUNE_CACHE` is set to 1 unless the environment sets it: Triton then keeps
each kernel's autotune result on disk beside its compiled binaries (``TRITON_CACHE_DIR``), and later processes skip
the autotuning (measured on an H100, DeltaNet-1.3B SFT: the first step took 121 s with it off, 31 s in a process that
found an earlier one's results). Triton reads it when fla's kernels are defined, i.e. at import.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable

#: hooks run after each first successful import through :func:`fla_symbols` (``refine.models`` adds the
#: re-registration of its Auto classes)
AFTER_IMPORT: list[Callable[[], None]] = []
TRITON_AUTOTUNE_CACHE = "TRITON_CACHE_AUTOTUNING"


@functools.cache
def fla_symbols(module: str, *names: str) -> tuple | None:
    """``getattr(<module>, name)`` for each name, or None when fla (or triton) cannot be imported."""
    os.environ.setdefault(TRITON_AUTOTUNE_CACHE, "1")
    try:
        found = importlib.import_module(module)
        symbols = tuple(getattr(found, name) for name in names)
    except Exception:  # noqa: BLE001  (any import failure: callers fall back to the torch ops)
        return None
    for hook in AFTER_IMPORT:
        hook()
    return symbols
