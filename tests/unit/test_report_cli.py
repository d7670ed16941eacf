"""`refine report ...`: every subcommand writes its outputs from a records folder."""

import json
import re

import pandas as pd
import pytest
from test_report_synth import paper_records, run_report, write_metrics, write_records

from refine.evaluate.records import config_hash
from refine.report.claims import VERDICTS


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    rows = paper_records(tables=("table3", "table4"), rng=0)
    write_records([r for r in rows if r["ttt"] == "none"], root / "evals")  # Table 4's TTT rows not run
    write_metrics(root / "train")
    return root


def test_build(results):
    out = results / "report"
    assert (
        run_report(
            "build",
            *("--records", str(results / "evals"), "--metrics", str(results / "train"), "--out", str(out)),
            *("--config-json", json.dumps({"experiment": "cli", "qa": {"source": "synthetic"}})),
        )
        == 0
    )
    assert (out / "tables" / "table4_paper.tex").is_file() and (out / "figures" / "fig4_val_ntp_acc.pdf").is_file()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 5 and "Table 4" in html
    # one self-contained page: nothing loaded from elsewhere; summary, verdicts, tables, figures in that order
    assert not re.search(r"(src|href)=\"(?!data:|#)", html)
    assert (
        html.index('id="summary"')
        < html.index('id="verdicts"')
        < html.index('id="tables"')
        < html.index('id="figures"')
    )
    assert 'href="#table4"' in html and 'id="table4"' in html and html.count("<figcaption>") == 5
    assert 'class="badge PASS"' in html and "claims not run" in html  # NOT RUN claims folded into <details>
    assert "cells n/a: why</summary>" in html and "Not run: no evaluation records match this table" in html
    digest = config_hash({"experiment": "cli", "qa": {"source": "synthetic"}})[:12]
    assert f"config hash <code>{digest}</code>" in html and "source=synthetic" in html and "<code>cli</code>" in html
    assert "![fig4_val_ntp_acc](figures/fig4_val_ntp_acc.png)" in (out / "report.md").read_text()
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["status"]) <= set(VERDICTS) and "NOT RUN" in set(claims["status"])
    assert claims["why"].notna().all() and claims["interval"].notna().sum() > 0
    assert not list(out.rglob("*.tmp*"))


def test_tables_options(results):
    out = results / "tables"
    niah = '{"S": "niah_single_1", "MK": "niah_multikey_2", "MQ": "niah_multiquery", "MV": "niah_multivalue"}'
    run_report("tables", "--records", str(results / "evals"), "--out", str(out), "--paper-config", "--niah-map", niah)
    md = (out / "table3_paper.md").read_text()
    assert "| Δ |" in md and "MK = niah_multikey_2" in md
    mk = pd.read_csv(out / "table3.csv").query("group == 'MK'")
    assert mk["mean"].isna().all()  # no records of niah_multikey_2


def test_claims_and_missing_folder(results, tmp_path):
    run_report("claims", "--records", str(results / "evals"), "--out", str(tmp_path))
    assert (tmp_path / "claims.md").read_text().startswith("### Claims")
    with pytest.raises(FileNotFoundError):
        run_report("figures", "--records", str(tmp_path / "nope"), "--out", str(tmp_path))
