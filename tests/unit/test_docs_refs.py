"""The project's documentation stands alone: every `spec x.y` cited resolves to a heading of docs/spec.md with
that number, and nothing points at documents or data outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "docs" / "spec.md"
TEXT_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".md", ".rst", ".txt", ".json", ".toml", ".cfg", ".sh"}
SKIP_PARTS = {"__pycache__", ".pytest_cache"}

NUMBER = r"§?\s*\d+(?:\.\d+)?"
# "spec 4.2", "Spec §7.4", "refine-spec section 9", "spec 4.1-4.9", "spec 3.1, 10.13", "spec §3.1, §7.1"
SPEC_REF = re.compile(
    rf"\bspec(?:\s+section|\s*§)?\s*(?P<numbers>{NUMBER}(?:\s*(?:,|-|–|/|and)\s*{NUMBER})*)", re.IGNORECASE
)
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
# Pointers out of the repository: the sibling `shared` folder (as a relative path or built with pathlib) and the
# background notes kept there (written so that a grep for them does not find this file).
OUTSIDE = re.compile(
    r"\.\./shared|shared/+docs|parent\s*/\s*[\"']shared[\"']|(?:architecture|tiny-replica|ecosystem)\.md|refine-spec"
)


def text_files(*folders: str) -> list[Path]:
    """Tracked-style text files under `folders` (build outputs and caches skipped)."""
    files = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES or path.name == "Snakefile":
                if not SKIP_PARTS & set(path.parts) and not any(p.endswith(".egg-info") for p in path.parts):
                    files.append(path)
    return files


def spec_sections() -> set[str]:
    return set(HEADING.findall(SPEC.read_text(encoding="utf-8")))


def cited_sections(text: str) -> list[tuple[int, str]]:
    """(line, section) for every section number cited as `spec ...` in `text`."""
    found = []
    for m in SPEC_REF.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        found += [(line, n) for n in re.findall(r"\d+(?:\.\d+)?", m["numbers"])]
    return found


def test_reference_parser():
    text = 'a (spec 4.1-4.9, 10.5) b\n"Spec §7.4" refine-spec section 9; spec 3.3, ecosystem; spec 5.3: L - 32'
    assert [n for _, n in cited_sections(text)] == ["4.1", "4.9", "10.5", "7.4", "9", "3.3", "5.3"]
    assert cited_sections("x\nspec §3.1, §7.1.") == [(2, "3.1"), (2, "7.1")]
    assert {"0", "4", "4.10", "10.13", "13.6"} <= spec_sections()
    outside = [
        "../" + "shared/data",
        "shared/" + "docs",
        'REPO.parent / "shared"',
        "architecture" + ".md",
        "refine-spec §2",
    ]
    assert all(OUTSIDE.search(s) for s in outside)
    assert not OUTSIDE.search("docs/spec.md section 2; docs/design.md")


def test_every_spec_reference_names_a_section():
    sections = spec_sections()
    files = text_files("src", "workflow", "tests", "docs", "config") + [REPO / "Snakefile", REPO / "README.md"]
    cited = {}
    for path in files:
        if path.exists() and path != SPEC:
            for line, number in cited_sections(path.read_text(encoding="utf-8", errors="replace")):
                cited.setdefault(number, []).append(f"{path.relative_to(REPO)}:{line}")
    assert len(cited) > 20, "the reference scan found almost nothing: the pattern is broken"
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert not missing, f"spec sections cited but absent from docs/spec.md: {missing}"


@pytest.mark.parametrize("folder", ["src", "workflow", "docs", "tests"])
def test_nothing_points_outside_the_repository(folder):
    this = Path(__file__).resolve()
    hits = [
        f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]}"
        for path in text_files(folder)
        if path.resolve() != this
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for m in OUTSIDE.finditer(text)
    ]
    assert not hits, "\n".join(hits)
