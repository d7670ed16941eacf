"""Shared fixtures: the real evaluation data (data/, git-ignored, where the default config finds it), local SLURM."""

import shutil
import subprocess
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


@pytest.fixture(scope="session")
def local_slurm() -> None:
    """A local SLURM whose `debug` partition is up with 2 fake GPUs (tests/slurm/start_local_slurm.sh, which CI
    starts); skips the test with the reason otherwise."""
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        pytest.skip("no SLURM client (run tests/slurm/start_local_slurm.sh)")
    try:
        cmd = ["sinfo", "-h", "-p", "debug", "-o", "%a %T %G"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer within 15 s")
    fields = proc.stdout.split()
    if proc.returncode != 0 or not fields:
        pytest.skip(f"sinfo does not answer / no debug partition: {proc.stderr.strip()[:200]}")
    if fields[0] != "up" or not fields[1].startswith(("idle", "mix", "alloc")) or "gpu:2" not in fields[2]:
        pytest.skip(f"debug partition not usable for the SLURM tests: {proc.stdout.strip()}")
