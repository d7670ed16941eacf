"""The code's identity: package version, git revision, and content hashes of the sources a command can run.

`code_version()` goes into evaluation records and training metrics; `command_hash(group)` (the sources
`refine <group>` can import) into the resume fingerprint and the workflow's rerun params (docs/design.md,
"Reruns"). Standard library only at import time: the workflow imports it when it builds the DAG.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_SKIP = ("__pycache__",)


def _package_files(directory: Path, recursive: bool) -> list[Path]:
    """Source and data files of a package directory (no caches, hidden or compiled files)."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return [
        f
        for f in found
        if f.is_file()
        and f.suffix != ".pyc"
        and not any(p in _SKIP or p.startswith(".") for p in f.relative_to(PACKAGE).parts)
    ]


def _module_file(name: str) -> Path | None:
    """The file of module `refine[.x.y]`, or None for names outside the package or not a module."""
    parts = name.split(".")
    if parts[0] != "refine":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py") if len(parts) > 1 else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str) -> set[str]:
    """Every module name `path` (module `name`) imports anywhere in its body, with their parent packages."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    parents = {".".join(n.split(".")[:i]) for n in found for i in range(1, n.count(".") + 1)}
    return found | parents


def import_closure(roots: Iterable[str]) -> list[Path]:
    """The package files that importing `roots` can execute (static imports, also inside functions),
    plus the data files beside them; sorted."""
    todo, seen, files = list(roots), set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(path)
        files.update(f for f in _package_files(path.parent, recursive=False) if f.suffix != ".py")
        todo.extend(_imports(path, name) - seen)
    return sorted(files)


def _digest(files: Iterable[Path]) -> str:
    h = hashlib.sha1()
    for f in sorted(files):
        h.update(f.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(hashlib.sha1(f.read_bytes()).digest())
    return h.hexdigest()


@functools.cache
def source_hash() -> str:
    """sha1 over every file of the package (paths and contents)."""
    return _digest(_package_files(PACKAGE, recursive=True))


@functools.cache
def command_hash(group: str) -> str:
    """sha1 over the files `refine <group>` can import (its `refine.commands.<group>` and the CLI)."""
    return _digest(import_closure(("refine.cli", f"refine.commands.{group}")))


@functools.cache
def git_revision() -> str | None:
    """HEAD of the git work tree holding the package, `-dirty` when the package differs from it; None
    outside git."""

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(PACKAGE), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def code_version() -> dict[str, str | None]:
    """`refine_version`, `code_revision` (git; None outside git) and `code_hash` (`source_hash`)."""
    from refine import __version__

    return {"refine_version": __version__, "code_revision": git_revision(), "code_hash": source_hash()}
