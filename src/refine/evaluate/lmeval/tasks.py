"""Per-document scoring for the local lm-eval tasks (`niah_local.yaml`, `short_local_recall.yaml`)."""

from __future__ import annotations

from refine.evaluate.metrics import niah_score, string_match_all


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`{str(doc["max_length"]): string_match_all}`; one metric per length, as lm-eval's RULER tasks
    (common_utils.py:101-108) but without -1 placeholders: each length's metric sees only its documents."""
    return {str(doc["max_length"]): niah_score(results[0], doc["outputs"])}


def recall_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`{"contains": 1.0 if the answer occurs in the generation (case-insensitive) else 0.0}`, lm-eval's
    fda / swde score (lm_eval/tasks/fda/task.py:94-98)."""
    return {"contains": string_match_all(results[0], [doc["answer"]])}
