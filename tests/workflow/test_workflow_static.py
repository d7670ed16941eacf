"""Static workflow checks: dry runs of every config, lint, snakefmt, schema rejection of unknown keys."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml"]


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run(configfile):
    proc = snakemake("all", "ablations", "-n", "--cores", "2", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_mid" in proc.stdout


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_snakefmt_check():
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_misspelled_key_is_rejected_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experimnet: oops\n")
    proc = snakemake("-n", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "experimnet" in proc.stdout + proc.stderr
