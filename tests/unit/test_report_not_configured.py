"""`longbench.source: none` reaches the report: LongBench tables say "not configured" instead of "not run"."""

from test_report_synth import paper_records, run_report, write_records


def tables(tmp_path, *extra) -> str:
    assert run_report("tables", "--records", str(tmp_path / "evals"), "--out", str(tmp_path), *extra) == 0
    return (tmp_path / "table5.md").read_text(), (tmp_path / "table3.md").read_text()


def test_not_configured_family_is_named_in_its_tables_only(tmp_path):
    write_records(paper_records(tables=("table3",), rng=0), tmp_path / "evals")  # no LongBench records
    table5, table3 = tables(tmp_path)
    assert "not run" in table5 and "not configured" not in table5
    table5, table3_again = tables(tmp_path, "--not-configured", "longbench")
    assert "n/a: not configured (longbench.source: none)" in table5 and "not run" not in table5
    assert table3_again == table3  # NIAH is configured: unchanged
