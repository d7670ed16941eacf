"""REFINE reproduction: fast-weight models, the REFINE method, training stages, evaluation and reports.

Importing the package is light (no torch): `import refine.models` registers the DeltaNet and LaCT model classes
with transformers' Auto* factories (every module that builds or loads a model imports it), so the commands that
only read records (tables, figures, claims, report) start in a fraction of a second.
"""

__version__ = "0.1.0"
