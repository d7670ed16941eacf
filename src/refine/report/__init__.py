"""The paper's tables, figures and claim checks: pure functions of the evaluation records and training metrics
(layouts, model and method names: docs/design.md) and the published numbers (``published.yaml``).

Columns use each record's ``length_label`` (the paper's 4K/8K/16K); where the evaluated ``length`` differs
(the tiny replica's 1K/2K/4K) the header reads e.g. ``1K (≙4K)``.
"""
