"""Every figure is written as a non-empty PNG and PDF, with and without data."""

from pathlib import Path

import pytest
from test_report_synth import paper_frame, write_metrics

from refine.report.figures import summary_effects, write_figures
from refine.report.records import load_metrics, records_frame
from refine.report.tables import build_all

NAMES = ["fig4_val_ntp_acc", "figE1_val_loss", "figE3_reward", "fig5_k_c", "summary_refine_minus_sft"]


def _check(paths: list[Path]) -> None:
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in NAMES for e in ("png", "pdf"))
    for p in paths:
        head = p.read_bytes()[:8]
        assert p.stat().st_size > 5000 and head.startswith(b"\x89PNG" if p.suffix == ".png" else b"%PDF")


def test_figures_with_data(tmp_path):
    tables = build_all(paper_frame(rng=0))
    _check(write_figures(tables, load_metrics(write_metrics(tmp_path / "train")), tmp_path / "fig"))
    effects = summary_effects(tables)
    assert len(effects) == 18 and effects["diff"].notna().all() and (effects["n_seeds"] == 3).all()
    # LaCT's REFINE minus SFT: S, MK, MQ, MV NIAH (Table 3), then RULER QA (Table 4) and LongBench (Table 5)
    assert effects["paper_diff"].round(2).tolist()[:6] == pytest.approx([0.7, 1.1, 0.3, 1.3, 1.25, 3.4], abs=0.01)


def test_summary_compares_the_niah_variants_a_run_has():
    """A run with S and MK only (the default) still shows its NIAH differences; MQ and MV read not run."""
    frame = paper_frame()
    frame = frame[~frame["task"].str.startswith(("niah_multiquery", "niah_multivalue"))]
    effects = summary_effects(build_all(frame)).set_index(["arch", "comparison"])["diff"]
    # the paper's cells (the means of its three lengths: its printed averages are rounded)
    assert effects["lact", "mid · S-NIAH"] == pytest.approx((99.0 + 93.0 + 96.8 - 98.4 - 90.8 - 97.6) / 3)
    assert effects["deltanet", "mid · MK-NIAH"] == pytest.approx((25.0 + 21.4 + 8.8 - 23.8 - 19.2 - 7.8) / 3)
    assert effects[:, "mid · MQ-NIAH"].isna().all() and effects[:, "mid · MV-NIAH"].isna().all()


def test_summary_marks_the_families_that_test_the_pipeline_only():
    tables = build_all(paper_frame())
    tables["table5"].pipeline_only = ("longbench",)  # what `refine report` sets from config report.pipeline_only
    effects = summary_effects(tables)
    assert effects.groupby("comparison")["pipeline_only"].all().to_dict() == {
        label: "LongBench" in label for label in effects["comparison"]
    }


def test_figures_without_data(tmp_path):
    _check(write_figures(build_all(records_frame([])), load_metrics(None), tmp_path / "fig"))


def test_reward_curves_label_the_plain_refine_run_with_its_recorded_k_and_c(tmp_path):
    from refine.report.figures import reward_curves

    metrics = load_metrics(write_metrics(tmp_path / "train"))
    fig = reward_curves(metrics.assign(refine_k=3, refine_c=4))  # what the run's metrics rows record
    [label] = [t.get_text() for t in fig.legends[0].get_texts()]
    assert label.startswith("k=3, c=4 (default)")
