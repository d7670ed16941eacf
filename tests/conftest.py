"""Shared fixtures: paths to the real evaluation data beside the project."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (LongBench and RULER-QA parquet files); skips the test with the reason if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run single-threaded: small kernels are faster so, and runs are reproducible across machines."""
    import torch

    torch.set_num_threads(1)
