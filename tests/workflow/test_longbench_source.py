"""`longbench.source` in the DAG: auto falls back to the hub download when the local directory is missing (a
fresh clone), local insists on it, none leaves LongBench out."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def dry_run(tmp_path, **longbench) -> subprocess.CompletedProcess:
    """A dry run of the default config's `all` with `longbench` overridden (an override file, after the default)."""
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"longbench": longbench}))
    cmd = [sys.executable, "-m", "snakemake", "all", "-n", "--cores", "2", "--configfile", "config/config.yaml"]
    return subprocess.run([*cmd, str(override)], cwd=REPO, capture_output=True, text=True)


def test_auto_without_the_local_directory_schedules_the_hub_download(tmp_path):
    proc = dry_run(tmp_path, source="auto", local_dir=str(tmp_path / "missing"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule longbench_download:" in proc.stdout and "rule longbench_data:" in proc.stdout
    assert "eval_longbench" in proc.stdout


def test_local_without_the_directory_fails_at_dag_build_and_none_leaves_longbench_out(tmp_path):
    proc = dry_run(tmp_path, source="local", local_dir=str(tmp_path / "missing"))
    assert proc.returncode != 0 and "longbench.source is local" in proc.stdout + proc.stderr
    proc = dry_run(tmp_path, source="none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LongBench not configured" in proc.stdout + proc.stderr
    for rule in ("longbench_download", "longbench_data", "eval_longbench", "ttt_longbench"):
        assert rule not in proc.stdout, rule
