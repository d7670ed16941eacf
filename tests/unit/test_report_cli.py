"""`refine report ...`: every subcommand writes its outputs from a records folder."""

import argparse

import pandas as pd
import pytest
from test_report_synth import paper_records, write_metrics, write_records

from refine.commands import report


def _run(*argv):
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_records(paper_records(tables=("table3", "table4"), rng=0), root / "evals")
    write_metrics(root / "train")
    return root


def test_build(results):
    out = results / "report"
    assert (
        _run("build", "--records", str(results / "evals"), "--metrics", str(results / "train"), "--out", str(out)) == 0
    )
    assert (out / "tables" / "table4_paper.tex").is_file() and (out / "figures" / "fig4_val_ntp_acc.pdf").is_file()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 5 and "Table 4" in html
    assert "![fig4_val_ntp_acc](figures/fig4_val_ntp_acc.png)" in (out / "report.md").read_text()
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["status"]) == {"PASS", "FAIL", "NOT RUN"} or set(claims["status"]) <= {"PASS", "FAIL", "NOT RUN"}
    assert not list(out.rglob("*.tmp*"))


def test_tables_options(results):
    out = results / "tables"
    niah = '{"S": "niah_single_1", "MK": "niah_multikey_2", "MQ": "niah_multiquery", "MV": "niah_multivalue"}'
    _run("tables", "--records", str(results / "evals"), "--out", str(out), "--paper-config", "--niah-map", niah)
    md = (out / "table3_paper.md").read_text()
    assert "| Δ |" in md and "MK = niah_multikey_2" in md
    mk = pd.read_csv(out / "table3.csv").query("group == 'MK'")
    assert mk["mean"].isna().all()  # no records of niah_multikey_2


def test_claims_and_missing_folder(results, tmp_path):
    _run("claims", "--records", str(results / "evals"), "--out", str(tmp_path))
    assert (tmp_path / "claims.md").read_text().startswith("### Claims")
    with pytest.raises(FileNotFoundError):
        _run("figures", "--records", str(tmp_path / "nope"), "--out", str(tmp_path))
