"""Atomic outputs: every file or directory the package writes appears complete or not at all.

The output is written into a temporary sibling folder `.{name}.XXXXXXXX` and renamed into place. A process
killed meanwhile leaves that folder behind; the next write of the same output removes it. Outputs get the
permissions the process's umask gives new files (writers such as safetensors create 0600 temporaries), so
a group can read them on a shared cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stale_temporaries(path: Path) -> list[Path]:
    """Temporary folders of earlier, killed writes of `path` (`tempfile.mkdtemp`'s 8-character suffix)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}")
    return [p for p in path.parent.iterdir() if p.is_dir() and not p.is_symlink() and pattern.fullmatch(p.name)]


def _share(root: Path) -> None:
    """Add to `root` and everything under it the permission bits the umask allows for new files / folders."""
    mask = _umask()
    for p in [root, *(root.rglob("*") if root.is_dir() else [])]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        p.chmod(stat.S_IMODE(mode) | ((0o777 if p.is_dir() else 0o666) & ~mask))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (file or directory) that replaces `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path):
        log.info("removing %s, left by an interrupted write of %s", stale, path.name)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        _share(tmp)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
