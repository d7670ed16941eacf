"""`refine report build --figures --claims` (the workflow's report rule) uses the figures and claims the
`figures` / `claims` rules made instead of redrawing and rechecking them, and says the same as a full build."""

import argparse
import re

import pytest
from test_report_synth import paper_records, write_metrics, write_records

from refine.commands import report


def _run(*argv):
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_build_consumes_the_figures_and_claims_made(tmp_path):
    write_records(paper_records(tables=("table3",), rng=0), tmp_path / "evals")
    write_metrics(tmp_path / "train")
    common = ("--records", str(tmp_path / "evals"), "--metrics", str(tmp_path / "train"))
    assert _run("figures", *common, "--out", str(tmp_path / "figures")) == 0
    assert _run("claims", *common, "--out", str(tmp_path)) == 0
    made = {p: p.stat().st_mtime_ns for p in (tmp_path / "figures").iterdir()}
    consumed, full = tmp_path / "report", tmp_path / "full"
    assert _run("build", *common, "--figures", str(tmp_path / "figures"), "--claims", str(tmp_path / "claims.csv"),
                "--out", str(consumed)) == 0  # fmt: skip
    assert _run("build", *common, "--out", str(full)) == 0
    assert sorted(p.name for p in consumed.iterdir()) == ["report.html", "report.md"]  # nothing rebuilt here
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "figures").iterdir()} == made
    text = (consumed / "report.md").read_text()
    assert "](../figures/fig4_val_ntp_acc.png)" in text
    stamp = re.compile(r"^Generated [^;]*;", re.M)  # the two builds may straddle a minute
    assert stamp.sub("", text.replace("../figures/", "figures/")) == stamp.sub("", (full / "report.md").read_text())
    with pytest.raises(ValueError, match="--figures and --claims go together"):
        _run("build", *common, "--figures", str(tmp_path / "figures"), "--out", str(consumed))
