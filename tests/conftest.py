"""Shared fixtures: the real evaluation data (data/, git-ignored), where the default config finds it."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# The folder holding longbench/ and ruler_qa/: the parent of the default config's `longbench.local_dir`
# (config paths are relative to the repository root).
_DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
EVAL_DATA = (REPO / _DEFAULT["longbench"]["local_dir"]).resolve().parent


@pytest.fixture(scope="session")
def eval_data() -> Path:
    """The evaluation data folder (LongBench and RULER-QA parquet files); skips the test with the reason if absent."""
    if not EVAL_DATA.is_dir():
        pytest.skip(f"real evaluation data not found: put ReFINE's longbench/ and ruler_qa/ files in {EVAL_DATA}")
    return EVAL_DATA


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run single-threaded: small kernels are faster so, and runs are reproducible across machines."""
    import torch

    torch.set_num_threads(1)
