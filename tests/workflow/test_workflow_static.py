"""Static workflow checks: dry runs of every config, lint, snakefmt, schema rejection of unknown keys."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refine.experiment import parse_model

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


def test_every_model_name_of_the_default_dag_parses_back():
    """Every model the default DAG (all + ablations) builds or evaluates is a name refine.experiment parses and
    rebuilds: a pattern renamed there is renamed everywhere."""
    proc = snakemake("all", "ablations", "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = set(re.findall(r"results/default/(?:models|evals|train)/(?:deltanet|lact)/([^/\s,;]+)", proc.stdout))
    stages = {parse_model(name).stage for name in names}
    assert all(parse_model(name).name == name for name in names)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    mids = (2 + len(cfg["ablations"]["mid_methods"])) * len(cfg["mid_seeds"])  # sft, refine, variants x seeds
    posts = 2 * len(cfg["lengths"]) * 3  # QA tasks x lengths x post methods
    assert stages == {"base", "mid", "post"} and len(names) == 1 + mids + posts, sorted(names)
