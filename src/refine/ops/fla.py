"""The gateway to fla: its CUDA kernels and fused modules, imported lazily on first use (on CUDA only).

Importing any part of fla also imports ``fla.models``, which registers fla's own "delta_net" classes with
transformers' Auto classes (fla/__init__.py); higher layers restore theirs through :data:`AFTER_IMPORT`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

#: hooks run after each first successful import through :func:`fla_symbols` (``refine.models`` adds the
#: re-registration of its Auto classes)
AFTER_IMPORT: list[Callable[[], None]] = []


@functools.cache
def fla_symbols(module: str, *names: str) -> tuple | None:
    """``getattr(<module>, name)`` for each name, or None when fla (or triton) cannot be imported."""
    try:
        found = importlib.import_module(module)
        symbols = tuple(getattr(found, name) for name in names)
    except Exception:  # noqa: BLE001  (any import failure: callers fall back to the torch ops)
        return None
    for hook in AFTER_IMPORT:
        hook()
    return symbols
