"""`refine report build --figures --claims` (the workflow's report rule) uses the figures and claims the
`figures` / `claims` rules made instead of redrawing and rechecking them, and says the same as a full build."""

import re

import pytest
from test_report_synth import paper_records, run_report, write_metrics, write_records


def test_build_consumes_the_figures_and_claims_made(tmp_path):
    write_records(paper_records(tables=("table3",), rng=0), tmp_path / "evals")
    write_metrics(tmp_path / "train")
    common = ("--records", str(tmp_path / "evals"), "--metrics", str(tmp_path / "train"))
    assert run_report("figures", *common, "--out", str(tmp_path / "figures")) == 0
    assert run_report("claims", *common, "--out", str(tmp_path)) == 0
    made = {p: p.stat().st_mtime_ns for p in (tmp_path / "figures").iterdir()}
    consumed, full = tmp_path / "report", tmp_path / "full"
    made_by_rules = ("--figures", str(tmp_path / "figures"), "--claims", str(tmp_path / "claims.csv"))
    assert run_report("build", *common, *made_by_rules, "--out", str(consumed)) == 0
    assert run_report("build", *common, "--out", str(full)) == 0
    assert sorted(p.name for p in consumed.iterdir()) == ["report.html", "report.md"]  # nothing rebuilt here
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "figures").iterdir()} == made
    text = (consumed / "report.md").read_text()
    assert "](../figures/fig4_val_ntp_acc.png)" in text
    stamp = re.compile(r"^Generated [^;]*;", re.M)  # the two builds may straddle a minute
    assert stamp.sub("", text.replace("../figures/", "figures/")) == stamp.sub("", (full / "report.md").read_text())
    with pytest.raises(ValueError, match="--figures and --claims go together"):
        run_report("build", *common, "--figures", str(tmp_path / "figures"), "--out", str(consumed))
