"""Atomic outputs: a killed write leaves only a temporary folder, which the next write of that output removes;
outputs get the permissions of the umask even when the writer created them private (0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

import refine.atomic
from refine.atomic import atomic_path, atomic_write_text

# refine/atomic.py loaded by path: the package's __init__ (torch) is not needed to write a file
KILLED_WRITE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("atomic", sys.argv[2])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
with atomic.atomic_path(sys.argv[1]) as tmp:
    tmp.mkdir()
    (tmp / "weights").write_text("half")
    os.kill(os.getpid(), 9)
"""


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    out = tmp_path / "model"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(out), refine.atomic.__file__])
    assert killed.returncode == -9 and not out.exists()
    (left,) = [p.name for p in tmp_path.iterdir()]
    assert left.startswith(".model.")
    others = [tmp_path / ".model.json.abcd1234", tmp_path / ".other.abcd1234", tmp_path / ".model.abc"]
    for p in others:  # another output's temporary, or not a temporary: kept
        p.mkdir()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("whole")
    assert (out / "weights").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", *(p.name for p in others)])


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_are_readable_by_the_group_even_if_written_private(tmp_path, umask_022):
    with atomic_path(tmp_path / "ckpt") as tmp:
        tmp.mkdir(mode=0o700)
        (tmp / "model.safetensors").write_bytes(b"x")
        (tmp / "model.safetensors").chmod(0o600)  # what safetensors' temporary file gets
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "ckpt", *(tmp_path / "ckpt").iterdir()]}
    assert modes == {"ckpt": 0o755, "model.safetensors": 0o644}
    atomic_write_text(tmp_path / "record.json", "{}")
    assert stat.S_IMODE((tmp_path / "record.json").stat().st_mode) == 0o644
