"""The code's identity: a command's hash follows exactly the sources it can import; records and metrics carry
the package version, the git revision (None outside git) and the package's content hash."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import refine
from refine import version


def load_copy(root: Path):
    """refine/version.py of a copy of the package under `root` (its own caches and PACKAGE)."""
    spec = importlib.util.spec_from_file_location(f"version_{root.name}", root / "refine" / "version.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def package_copy(tmp_path):
    shutil.copytree(version.PACKAGE, tmp_path / "refine", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_train_closure_holds_what_training_runs_and_not_the_report():
    files = {p.relative_to(version.PACKAGE).as_posix() for p in version.import_closure(["refine.commands.train"])}
    assert {"__init__.py", "train/trainer.py", "train/stages.py", "rl/step.py", "version.py"} <= files
    assert not any(f.startswith("report/") for f in files)


def test_no_command_imports_the_workflow_config_rules():
    """A change to the workflow's cross-key rules reruns no job: no command's closure holds them."""
    commands = [f"refine.commands.{p.stem}" for p in (version.PACKAGE / "commands").glob("[!_]*.py")]
    files = {p.relative_to(version.PACKAGE).as_posix() for p in version.import_closure(["refine.cli", *commands])}
    assert {"config.py", "commands/train.py"} <= files and "workflow_config.py" not in files


def test_a_command_hash_changes_with_its_sources_only(package_copy):
    def hashes():
        copy = load_copy(package_copy)
        return {"train": copy.command_hash("train"), "report": copy.command_hash("report"), "all": copy.source_hash()}

    before = hashes()
    with (package_copy / "refine" / "report" / "tables.py").open("a") as f:
        f.write("\n# an edit to the report\n")
    after_report = hashes()
    assert after_report["train"] == before["train"]
    assert after_report["report"] != before["report"] and after_report["all"] != before["all"]
    with (package_copy / "refine" / "train" / "optim.py").open("a") as f:
        f.write("\n# an edit to training\n")
    assert hashes()["train"] != before["train"]


def test_code_version_outside_git_is_the_content_hash(package_copy):
    if subprocess.run(["git", "-C", str(package_copy), "rev-parse"], capture_output=True).returncode == 0:
        pytest.skip("the temporary directory is inside a git work tree")
    copy = load_copy(package_copy)
    assert copy.git_revision() is None
    assert copy.code_version() == {
        "refine_version": refine.__version__,
        "code_revision": None,
        "code_hash": copy.source_hash(),
    }


def test_the_workflow_loads_it_without_importing_torch():
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('v', {str(Path(version.__file__))!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert len(m.command_hash('train')) == 40 and 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_records_carry_the_code_version(tmp_path):
    from refine.evaluate.records import write_record

    fields = {"experiment": "e", "arch": "deltanet", "model": "base", "stage": "base", "method": "none", "seed": 0,
              "family": "qa", "task": "t", "length": 1024, "length_label": "1K", "ttt": "none", "metric": "m",
              "score": 0.0, "n": 0, "examples": []}  # fmt: skip
    record = write_record(tmp_path / "r.json", **fields)
    assert {k: record[k] for k in version.code_version()} == version.code_version()
