"""Logging, set up once per process; only rank 0 speaks at INFO under torchrun."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; non-zero ranks log warnings and errors only."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=level if rank == 0 else "WARNING", format=_FORMAT, datefmt="%H:%M:%S", force=True)
