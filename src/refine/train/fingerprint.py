"""The resume fingerprint: a hash of everything that determines a run's weights (docs/design.md, "Reruns").

A saved training state is resumed only by a run with the same fingerprint; any other run starts fresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from refine.version import command_hash

BOOKKEEPING = ("keep_state", "save_every")  # config fields that never change the computed weights


def content_hash(path: Path | str) -> str:
    """sha1 of a file's bytes, or of a directory's files (relative paths and contents, sorted; hidden
    entries such as a hub download's `.cache/` skipped, since they hold timestamps, not content)."""
    path = Path(path)
    if path.is_file():
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    if not path.is_dir():
        raise FileNotFoundError(f"training input {path} is not a local file or directory (a resumable run hashes it)")
    h = hashlib.sha1()
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            h.update(rel.as_posix().encode() + b"\0" + content_hash(f).encode())
    return h.hexdigest()


def fingerprint(cfg, desc: str, seed: int, inputs: Mapping[str, Path | str | None] | None = None) -> str:
    """sha1 of the resolved stage config (a dataclass, less its `BOOKKEEPING` fields), the stage/method
    description, the seed, the content of each input file or directory (base checkpoint, data, tokenizer;
    None = absent), refine's training code (`command_hash("train")`, which covers the package version) and
    torch's version."""
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in BOOKKEEPING}
    hashed = {name: content_hash(p) if p else None for name, p in sorted((inputs or {}).items())}
    identity = [config, desc, seed, hashed, command_hash("train"), torch.__version__]
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
