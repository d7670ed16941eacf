"""REFINE reproduction: fast-weight models, the REFINE method, training stages, evaluation and reports.

Importing the package registers the DeltaNet and LaCT model classes with transformers' Auto* factories.
"""

__version__ = "0.1.0"

import refine.models  # noqa: F401  (registers the model classes)
