"""The smoke config end to end: every evaluation cell gets a record, every table its rows and columns, the
numbers are in range; a second run does nothing; a deleted record reruns just its job; tables, figures and
the report rebuild from records alone; the same DAG through the real local SLURM gives the same records.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from refine.report.browser import chromium, open_report
from refine.report.claims import FORGETTING_TOLERANCE, VERDICTS

REPO = Path(__file__).resolve().parents[2]
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
LONGBENCH = (REPO / SMOKE["longbench"]["local_dir"]).resolve()  # config paths are relative to the repository
MODELS_MID = ["base", "mid-sft-s0", "mid-refine-s0"]
POST_ROWS = [("sft", "none"), ("nested_sft", "none"), ("nested_refine", "none"), ("nested_refine", "sft"),
             ("nested_refine", "refine")]  # fmt: skip


def snakemake(workdir: Path, *args: str, overrides: dict | None = None, timeout: int = 900):
    """Run the workflow with the smoke config in `workdir` (results/ lands there); `overrides` update it."""
    workdir.mkdir(parents=True, exist_ok=True)
    override = workdir / "override.yaml"  # the LongBench path as seen from workdir, plus the test's changes
    override.write_text(yaml.safe_dump({"longbench": {"local_dir": str(LONGBENCH)}, **(overrides or {})}))
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config" / "smoke.yaml"), str(override)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def expected_records() -> list[str]:
    """Every evaluation cell of the smoke DAG (Tables 3, 4, 5, E.1)."""
    archs, lengths = SMOKE["archs"], SMOKE["lengths"]
    out = []
    for a in archs:
        out += [
            f"{a}/{m}/niah/{t}_{n}_ttt-none.json" for m in MODELS_MID for t in SMOKE["niah"]["tasks"] for n in lengths
        ]
        for t in SMOKE["qa"]["tasks"]:
            for n in lengths:
                out += [f"{a}/{m}/qa/{t}_{n}_ttt-none.json" for m in MODELS_MID]
                out += [f"{a}/post-{t}-{n}-{m}-s0/qa/{t}_{n}_ttt-{ttt}.json" for m, ttt in POST_ROWS]
        rows = [("base", "none"), ("mid-sft-s0", "none"), ("mid-refine-s0", "none"), ("mid-refine-s0", "sft"),
                ("mid-refine-s0", "refine")]  # fmt: skip
        out += [
            f"{a}/{m}/longbench/{t}_{lengths[-1]}_ttt-{ttt}.json"
            for m, ttt in rows
            for t in SMOKE["longbench"]["tasks"]
        ]
        out += [
            f"{a}/{m}/short/{t}_{lengths[0]}_ttt-none.json" for m in MODELS_MID for t in SMOKE["short_eval"]["tasks"]
        ]
    return out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if not LONGBENCH.is_dir():
        pytest.skip(f"LongBench data not found at {LONGBENCH}")
    workdir = tmp_path_factory.mktemp("smoke")
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return workdir


def test_every_cell_has_a_record_in_range(smoke_run):
    evals = smoke_run / "results" / "smoke" / "evals"
    missing = [r for r in expected_records() if not (evals / r).is_file()]
    assert not missing, missing[:10]
    for path in evals.rglob("*.json"):
        rec = json.loads(path.read_text())
        assert 1.0 <= rec["score"] if "perplexity" in rec["metric"] else 0.0 <= rec["score"] <= 100.0, path
        assert rec["n"] >= 1 and len(rec["examples"]) == rec["n"], path
        assert rec["experiment"] == "smoke" and rec["config_hash"], path


def test_tables_have_the_papers_rows_and_columns(smoke_run):
    tables = smoke_run / "results" / "smoke" / "tables"
    for name in ("table3", "table4", "table5"):
        frame = pd.read_csv(tables / f"{name}.csv")
        assert len(frame) > 0, name
        values = frame["mean"].dropna()
        assert ((values >= 0) & (values <= 100)).all(), name
    md3 = (tables / "table3.md").read_text()
    for family in ("S", "MK", "MQ", "MV"):
        assert family in md3
    md4 = (tables / "table4.md").read_text()
    assert "Nested REFINE" in md4 and "SQuAD" in md4 and "Hotpot" in md4
    md5 = (tables / "table5.md").read_text()
    assert "QR" in md5 and "TC" in md5
    e1 = pd.read_csv(tables / "tableE1.csv")  # the local tasks fill the Offline columns; the paper's are n/a
    offline = e1["group"].eq("Offline")
    assert e1.loc[offline, "mean"].notna().all() and e1.loc[~offline, "mean"].isna().all()


def test_figures_claims_and_report_exist(smoke_run):
    out = smoke_run / "results" / "smoke"
    for png in (out / "figures").glob("*.png"):
        assert png.stat().st_size > 5000, png
    assert len(list((out / "figures").glob("*.png"))) == 5
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    assert set(claims["status"]) <= set(VERDICTS) and claims["why"].notna().all()
    lb = claims.filter(regex=r"^(6\.longbench|5\.ttt_refine_gt_sft\.LongBench)", axis=0)
    assert len(lb) == 4 and lb["status"].isin(["NOT MEASURABLE", "NOT RUN"]).all()  # smoke: report.pipeline_only
    forgetting = claims.filter(like="8.no_forgetting", axis=0)  # offline: decided on Table E.1's stand-ins
    assert len(forgetting) == 2 and (forgetting["status"] != "NOT RUN").all()
    assert forgetting["detail"].str.endswith("offline stand-ins").all()
    assert (claims.loc[claims.status == "PASS", "ci95_lo"] > -FORGETTING_TOLERANCE - 1e-6).all()
    assert (claims.loc[claims.status == "FAIL", "ci95_hi"] < 0).all()
    t3 = pd.read_csv(out / "tables" / "table3.csv")
    ran = t3["mean"].notna()
    assert (t3.loc[ran, "n_samples"] > 0).all() and t3.loc[ran, "ci95_half"].notna().all()
    assert (out / "report" / "report.html").stat().st_size > 10000


@pytest.mark.skipif(chromium() is None, reason="needs chromium + chromedriver (.ci/run installs them)")
def test_report_reads_in_a_browser(smoke_run):
    html = smoke_run / "results" / "smoke" / "report" / "report.html"
    with open_report(html) as page:
        assert page.errors == []
        images = page.images()
        assert len(images) == 5 and all(i["complete"] and i["width"] > 0 for i in images)
        assert {"summary", "verdicts", "tables", "figures", "table3", "table4", "table5"} <= page.ids()
        assert page.top("summary") < page.height / 4 and "smoke" in page.text("summary")
        page.screenshot(html.with_name("report.png"))


def test_training_log_shows_progress(smoke_run):
    log = (smoke_run / "results/smoke/logs/train_mid/lact/mid-refine-s0.log").read_text()
    lines = [x for x in log.splitlines() if "refine.progress" in x and " step " in x]
    assert lines and all("loss=" in x and "tok/s=" in x and "ETA" in x for x in lines), log[-2000:]


def test_second_run_does_nothing(smoke_run):
    proc = snakemake(smoke_run, "-n", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_deleted_record_reruns_only_its_job(smoke_run):
    record = smoke_run / "results" / "smoke" / "evals" / "deltanet" / "post-ruler_squadqa-512-sft-s0" / "qa"
    (record / "ruler_squadqa_512_ttt-none.json").unlink()
    proc = snakemake(smoke_run, "evaluate", "-n", "--cores", "2", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval_qa_post" in proc.stdout and "train_" not in proc.stdout, proc.stdout
    proc = snakemake(smoke_run, "evaluate", "--cores", "2")
    assert proc.returncode == 0 and (record / "ruler_squadqa_512_ttt-none.json").is_file()


def test_changed_pretraining_lr_retrains_the_mid_checkpoints(smoke_run, tmp_path):
    """A config change upstream reaches the mid-trained weights: no stale resume from the saved state.
    Runs on a copy of the smoke run, whose config stays as it was for the tests after this one."""
    rerun = tmp_path / "rerun"
    shutil.copytree(smoke_run, rerun, symlinks=True)
    mid = rerun / "results" / "smoke" / "models" / "deltanet" / "mid-sft-s0"
    before = {p.name: p.read_bytes() for p in mid.glob("*.safetensors")}
    lr = SMOKE["pretrain"]["optim"]["lr"] * 0.5  # config files merge key by key: only the lr changes
    overrides = {"pretrain": {"optim": {"lr": lr}}}
    proc = snakemake(rerun, str(mid.relative_to(rerun)), "--cores", "2", overrides=overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "base_model" in proc.stdout + proc.stderr and "train_mid" in proc.stdout + proc.stderr
    after = {p.name: p.read_bytes() for p in mid.glob("*.safetensors")}
    assert before and after.keys() == before.keys() and after != before
    log = (rerun / "results/smoke/logs/train_mid/deltanet/mid-sft-s0.log").read_text()
    assert "resumed from" not in log, log[-2000:]


def test_tables_figures_report_rebuild_from_records_alone(smoke_run):
    out = smoke_run / "results" / "smoke"
    for name in ("tables", "figures", "report"):
        shutil.rmtree(out / name)
    shutil.rmtree(out / "models")  # no checkpoint is needed to rebuild the presentation layer
    proc = snakemake(smoke_run, "tables", "figures", "report", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_" not in proc.stderr and "eval_" not in proc.stderr
    assert (out / "tables" / "table4.csv").is_file() and (out / "report" / "report.html").is_file()


@pytest.mark.slurm
def test_slurm_run_gives_the_local_records(smoke_run, tmp_path, local_slurm):
    """The smoke DAG (DeltaNet half) through the real local SLURM gives the local run's records."""
    workdir = tmp_path / "slurm"
    proc = snakemake(workdir, "evaluate", "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm-ci"),
                     overrides={"archs": ["deltanet"]}, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert list((workdir / "results" / "logs" / "slurm").rglob("*.log")), "no SLURM job logs"
    local = smoke_run / "results" / "smoke" / "evals" / "deltanet"
    remote = workdir / "results" / "smoke" / "evals" / "deltanet"
    records = sorted(p.relative_to(remote) for p in remote.rglob("*.json"))
    assert records and records == sorted(p.relative_to(local) for p in local.rglob("*.json"))
    for rel in records:
        a, b = (json.loads((root / rel).read_text()) for root in (local, remote))
        for key in ("score", "n", "examples", "config_hash"):
            assert a[key] == b[key], (rel, key)
