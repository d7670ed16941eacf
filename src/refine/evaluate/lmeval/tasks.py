"""Per-document scoring for the local NIAH tasks (`niah_local.yaml`)."""

from __future__ import annotations

from refine.evaluate.metrics import niah_score


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`{str(doc["max_length"]): string_match_all}`; one metric per length, as lm-eval's RULER tasks
    (common_utils.py:101-108) but without -1 placeholders: each length's metric sees only its documents."""
    return {str(doc["max_length"]): niah_score(results[0], doc["outputs"])}
