"""Logging, set up once per process; only rank 0 speaks at INFO under torchrun. Progress of long loops: a tqdm
bar on a terminal, log lines otherwise (Snakemake and SLURM job logs)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROGRESS_LINES = 20  # a progress line at least every total/20 steps ...
PROGRESS_SECONDS = 300.0  # ... and at least every 5 minutes
T = TypeVar("T")


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; non-zero ranks log warnings and errors only."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=level if rank == 0 else "WARNING", format=_FORMAT, datefmt="%H:%M:%S", force=True)


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}"


class Progress:
    """tqdm's `update` / `set_postfix` / `close` for a loop of `total` units (from `initial`, when resumed).

    When `stream` is a terminal this is a tqdm bar. Otherwise, through the `refine.progress` logger, a line
    ``{desc}: {unit} done/total (pct) key=value ... | rate, elapsed, ETA`` after the first update, whenever
    `every` units (default total/20) or `seconds` have passed since the last line, and at the end; the
    key=values are the latest `set_postfix`. Disabled (off rank 0): silent.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        enabled: bool = True,
        unit: str = "step",
        every: int | None = None,
        seconds: float = PROGRESS_SECONDS,
        stream: TextIO | None = None,
    ):
        stream = stream or sys.stderr
        self.total, self.done, self.desc, self.unit = total, initial, desc, unit
        self.every, self.seconds = every or max(1, total // PROGRESS_LINES), seconds
        terminal = enabled and stream.isatty()
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=stream)
            if terminal
            else None
        )
        self.log = logging.getLogger("refine.progress") if enabled and self.bar is None else None
        self.postfix: dict[str, str] = {}
        self.start = self.last_time = time.monotonic()
        self.initial = self.last_done = initial

    def set_postfix(self, values: dict[str, str] | None = None, **more: str) -> None:
        self.postfix = {**(values or {}), **more}
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        due = self.done - self.last_done >= self.every or now - self.last_time >= self.seconds
        if self.log is not None and (due or self.last_done == self.initial or self.done >= self.total):
            self.log.info(self.line(now))
            self.last_done, self.last_time = self.done, now

    def line(self, now: float) -> str:
        """The progress line at time `now` (monotonic seconds)."""
        elapsed = now - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else float("nan")
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
        pct = 100 * self.done / self.total if self.total else 100.0
        shown = "".join(f" {k}={v}" for k, v in self.postfix.items())
        return (
            f"{self.desc}: {self.unit} {self.done}/{self.total} ({pct:.0f}%){shown} | "
            f"{rate:.3g} {self.unit}/s, elapsed {_clock(elapsed)}, ETA {eta}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def logged(items: Iterable[T], desc: str, unit: str = "cell", enabled: bool = True) -> Iterator[T]:
    """Iterate over `items`, reporting each one done through `Progress` (every item: cells are few and slow)."""
    items = list(items)
    with Progress(len(items), desc=desc, enabled=enabled, unit=unit, every=1) as bar:
        for item in items:
            yield item
            bar.update(1)
