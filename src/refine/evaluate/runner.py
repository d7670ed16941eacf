"""RULER multi-doc QA and LongBench evaluation: generate (`generation`), score (`metrics`), return the
scoring part of a record (family, task, metric, score x100, n, examples; docs/design.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from refine.evaluate.generation import Batch, GenerationConfig, generate_responses
from refine.evaluate.metrics import longbench_metric_name, longbench_score, qa_score

Hook = Callable[[Batch], None]


def evaluate_qa(
    model,
    tokenizer,
    rows: Sequence[Mapping],
    cfg: GenerationConfig | None = None,
    *,
    source: str = "rows",
    hook: Hook | None = None,
) -> dict:
    """RULER SQuAD/HotpotQA (spec §7.2): rows with `prompt` and `answer` (list of str); score
    `string_match_part` of the first response line. `source` names the data in error messages."""
    _check(rows, ("prompt",), "answer", source)
    return _evaluate(
        model,
        tokenizer,
        rows,
        cfg or GenerationConfig(),
        hook,
        source=source,
        family="qa",
        task=_task(rows, source),
        metric="string_match_part",
        answer_key="answer",
        score=qa_score,
    )


def evaluate_longbench(
    model,
    tokenizer,
    rows: Sequence[Mapping],
    cfg: GenerationConfig | None = None,
    *,
    source: str = "rows",
    hook: Hook | None = None,
) -> dict:
    """One LongBench task (spec §7.3): rows with `prompt`, `answers` (list of str) and `task`; with
    `cfg.official_max_new_tokens` also `max_gen_tokens`."""
    cfg = cfg or GenerationConfig()
    _check(
        rows,
        ("prompt", "task") + (("max_gen_tokens",) if cfg.official_max_new_tokens else ()),
        "answers",
        source,
    )
    task = _task(rows, source)
    return _evaluate(
        model,
        tokenizer,
        rows,
        cfg,
        hook,
        source=source,
        family="longbench",
        task=task,
        metric=longbench_metric_name(task),
        answer_key="answers",
        score=lambda response, refs: longbench_score(task, response, refs),
    )


def references(value) -> list[str]:
    """ReFINE joins the answers with "|" and splits them again (rl_dataset.py:390-398, naive.py:55)."""
    return "|".join(value).split("|")


def _evaluate(model, tokenizer, rows, cfg, hook, *, source, family, task, metric, answer_key, score) -> dict:
    if cfg.drop_last and len(rows) < cfg.batch_size:
        raise ValueError(f"{source}: {len(rows)} rows, fewer than one batch of {cfg.batch_size} (drop_last)")
    budgets = [int(row["max_gen_tokens"]) for row in rows] if cfg.official_max_new_tokens else None
    prompts = [row["prompt"] for row in rows]
    responses = generate_responses(
        model, tokenizer, prompts, cfg, source=source, max_new_tokens=budgets, before_batch=hook
    )
    examples = []
    for i, (row, response) in enumerate(zip(rows, responses)):
        refs = references(row[answer_key])
        examples.append(
            {
                "index": int(row.get("index", i)),
                "prediction": response,
                "references": refs,
                "score": float(score(response, refs)),
            }
        )
    mean = 100 * sum(e["score"] for e in examples) / len(examples)
    return {
        "family": family,
        "task": task,
        "metric": metric,
        "score": mean,
        "n": len(examples),
        "examples": examples,
    }


def _check(rows: Sequence[Mapping], fields: Sequence[str], answer_key: str, source: str) -> None:
    """Every row has `fields` and a non-empty list of strings under `answer_key`; errors name source/row/field."""
    if not rows:
        raise ValueError(f"{source}: no rows")
    for i, row in enumerate(rows):
        missing = [f for f in (*fields, answer_key) if f not in row]
        if missing:
            raise ValueError(f"{source}: row {i} lacks field(s) {missing} (has {sorted(row)})")
        value = row[answer_key]
        if isinstance(value, str) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{source}: row {i} field {answer_key!r} must be a non-empty list of strings")


def _task(rows: Sequence[Mapping], source: str) -> str | None:
    tasks = {row.get("task") for row in rows}
    if len(tasks) > 1:
        raise ValueError(f"{source}: rows mix tasks {sorted(map(str, tasks))}; evaluate one task at a time")
    return tasks.pop()
