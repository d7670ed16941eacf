"""Evaluation: RULER NIAH through lm-eval, RULER QA and LongBench by batched greedy generation, records.

Modules: `metrics` (scoring rules), `generation` (batched greedy engine with a `before_batch` hook),
`lmeval` (lm-eval task YAMLs and glue), `runner` (QA / LongBench), `records` (record files).
"""
