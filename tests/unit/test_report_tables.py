"""Tables from synthetic records: the paper's layout, means and 95% CIs over seeds, best marks, n/a cells."""

import math

import pandas as pd
import pytest
from test_report_synth import paper_frame, paper_records, record

from refine.report import render
from refine.report.records import records_frame
from refine.report.stats import compare, half_width, t975
from refine.report.tables import build, build_all, specs

HALF = t975(2) * 0.5 / math.sqrt(3)  # synthetic noise -0.5, 0, +0.5 over three seeds


@pytest.fixture(scope="module")
def tables():
    return build_all(paper_frame())


def test_layout_is_the_papers(tables):
    t4 = tables["table4"]
    assert t4.index.names == ["arch", "MidTr", "PostTr", "TTT"] and len(t4.index) == 16
    assert list(t4.columns)[:4] == [("SQuADQA", "4K"), ("SQuADQA", "8K"), ("SQuADQA", "16K"), ("SQuADQA", "Avg")]
    assert t4.index[7] == ("lact", "REFINE", "Nested REFINE", "REFINE")
    assert [c[1] for c in tables["table5"].columns][-1] == "Avg" and len(tables["table5"].columns) == 13
    assert list(tables["table3"].columns.get_level_values(0).unique()) == ["S", "MK", "MQ", "MV"]
    assert t4.header(("SQuADQA", "4K")) == "SQuADQA 1K (≙4K)"
    paper_lengths = build_all(paper_frame(tables=("table4",), lengths={"4K": 4096, "8K": 8192, "16K": 16384}))
    assert paper_lengths["table4"].header(("HotpotQA", "16K")) == "HotpotQA 16K"


@pytest.mark.parametrize("name", ["table3", "table4", "table5", "tableE1", "table6", "table7", "tableE2"])
def test_cells_are_the_seed_means_with_t_intervals(tables, name):
    table = tables[name]
    mean, paper, half, n = table.mean, table.paper, table.half, table.n
    cells = [c for c in table.columns if c[1] != "Avg"]
    # ablation cells that reuse the Table 5 REFINE runs average their rounded cells, not the printed Avg
    tolerance = 0.05 if name in ("table6", "table7", "tableE2") else 1e-9
    assert (mean[cells] - paper[cells]).abs().max().max() < tolerance
    for group in {c[0] for c in table.columns if c[1] == "Avg"}:
        assert ((mean[(group, "Avg")] - mean[group].drop(columns="Avg").mean(axis=1)).abs() < 1e-9).all()
    seeded = [k for k in table.index if not (len(k) > 1 and k[1] in ("base", "–"))]
    printed = [c for c in table.columns if paper[c].notna().any()]  # Table E.1 adds offline-only columns
    assert (n.loc[seeded, printed] == 3).all().all() and (half.loc[seeded] - HALF).abs().max().max() < 1e-9
    if name in ("table3", "table4"):
        base = [k for k in table.index if k not in seeded]
        assert (n.loc[base] == 1).all().all() and half.loc[base].isna().all().all()


def test_best_marks_follow_the_paper(tables):
    md = render.to_markdown(tables["table4"])
    assert "**45.5** ± " in md and "**8.5** ± " in md  # LaCT TTT REFINE; DeltaNet Nested REFINE Hotpot 16K
    t6 = render.to_markdown(tables["table6"])
    assert "**16.9** ±" in t6 and "**16.6**" not in t6  # per row in the ablation tables
    tex = render.to_latex(tables["table3"])
    assert r"\textbf{99.0} $\pm$" in tex and r"\multicolumn{4}{c}{MK}" in tex and "$\\widehat{=}$" in tex


def test_missing_cells_are_na_and_listed():
    frame = paper_frame(tables=("table4",))
    drop = (frame["model"] == "mid-sft-s1") & (frame["task_key"] == "squad") & (frame["length_label"] == "8K")
    t4 = build(frame[~drop], specs()["table4"])
    row = ("lact", "SFT", "–", "–")
    assert t4.n.loc[row, ("SQuADQA", "8K")] == 2  # seeds 0 and 2 remain
    assert t4.n.loc[row, ("SQuADQA", "Avg")] == 2  # seed 1 lacks a length, so it leaves the Avg
    t5 = build(frame, specs()["table5"])
    assert len(t5.missing()) == 10 * 13
    md = render.to_markdown(t5)
    assert md.count("| n/a") == 10 * 13 and "n/a: no evaluation records match any cell" in md
    only = build(frame[~((frame["model"] == "base") & (frame["task_key"] == "hotpot"))], specs()["table4"])
    assert [c for r, c in only.missing()] == [("HotpotQA", x) for x in ("4K", "8K", "16K", "Avg")] * 2
    # one reason, stated once, for both rows it applies to
    hotpot = ", ".join(f"HotpotQA {x}" for x in ("1K (≙4K)", "2K (≙8K)", "4K (≙16K)", "Avg"))
    assert render.na_reasons(only) == [(f"no records for {hotpot}", ["LaCT / – / – / –", "DeltaNet / – / – / –"])]
    assert render.to_markdown(only).count("no records for") == 1
    no_ttt = build(frame[frame["ttt"] == "none"], specs()["table4"])
    assert render.na_reasons(no_ttt) == [
        (
            "no records (row not run)",
            [f"{a} / REFINE / Nested REFINE / {t}" for a in ("LaCT", "DeltaNet") for t in ("SFT", "REFINE")],
        )
    ]


def test_post_models_count_only_on_their_own_task_and_length():
    rows = paper_records(tables=("table4",))
    stray = dict(
        next(r for r in rows if r["model"].startswith("post-squadqa-1024-nested_sft")), task="hotpotqa", score=99.0
    )
    t4 = build(records_frame(rows + [stray]), specs()["table4"])
    assert t4.mean.loc[("lact", "REFINE", "Nested SFT", "–"), ("HotpotQA", "4K")] == pytest.approx(24.0)


def test_companion_and_csv(tables, tmp_path):
    paths = render.write_table(tables["table5"], tmp_path, deltas=True)
    assert [p.name for p in paths] == ["table5.csv", "table5.md", "table5.tex", "table5_paper.md", "table5_paper.tex"]
    md = (tmp_path / "table5_paper.md").read_text()
    assert "| Δ |" in md and "| paper |" in md
    assert "| Δ |" not in render.to_markdown(tables["table5"], companion=True, deltas=False)
    csv = pd.read_csv(tmp_path / "table5.csv")
    assert len(csv) == 10 * 13 and {"mean", "ci95_half", "n_seeds", "best", "paper", "delta"} <= set(csv.columns)
    assert csv["delta"].abs().max() < 0.05


def test_stats():
    assert t975(1) == 12.706 and abs(t975(60) - 2.000) < 1e-3 and abs(t975(31) - 2.0395) < 1e-3
    assert math.isnan(half_width(pd.Series([1.0])))
    paired = compare(pd.Series([2.0, 3.0, 4.0]), pd.Series([1.0, 2.0, 3.0]))
    assert paired.diff == 1 and paired.half == 0 and paired.rel == pytest.approx(50)
    against_base = compare(pd.Series([2.0, 4.0]), pd.Series([1.0]))
    assert against_base.diff == 2 and against_base.half == pytest.approx(t975(1) * 1)
    welch = compare(pd.Series([2.0, 4.0], index=[0, 1]), pd.Series([1.0, 2.0], index=[5, 6]))
    assert welch.diff == 1.5 and welch.half > 0
    assert compare(pd.Series([1.0]), pd.Series(dtype=float)) is None


def test_table_e1_offline_columns_beside_the_paper_and_na_reasons():
    """Table E.1: an offline run's local-task cells, the paper's numbers beside them, n/a (with the reason)
    for the paper's tasks it could not run."""
    spec = specs()["tableE1"]
    offline = [c for c in spec.cols if c.group == "Offline" and c.label != "acc Avg"]
    local = [
        record(arch, {**row.where, **col.where}, 0, 10.0 * (i + 1) + j)
        for arch in ("lact", "deltanet")
        for i, row in enumerate(spec.rows)
        for j, col in enumerate(offline)
    ]
    smoke = build(records_frame(local), spec)
    assert smoke.mean.loc[("deltanet", "+ REFINE MidTr"), ("Offline", "cloze ppl")] == 31.0
    assert smoke.mean.loc[("deltanet", "+ REFINE MidTr"), ("Offline", "acc Avg")] == 32.5  # cloze 32, choice 33
    assert smoke.missing() == [(r, c) for r in smoke.index for c in smoke.columns if c[0] != "Offline"]
    md = render.to_markdown(smoke, companion=True)
    assert "| DeltaNet | base | ours | n/a | n/a |" in md and "| paper | 16.7 | 14.7 | 18.0 | 54.4 |" in md
    assert "leaves them n/a and runs the local tasks" in md  # the reason
    assert md.count("n/a: no records for Perplexity Wiki ppl, Perplexity LMB ppl, Recall FDA, Recall SWDE") == 1

    paper = [r for r in paper_records(tables=("tableE1",)) if r["task"] != "swde-contains"]
    full = build(records_frame(paper + local), spec)
    assert full.mean.loc[("lact", "+ SFT MidTr"), ("Recall", "FDA")] == pytest.approx(37.2)
    assert full.mean.loc[("lact", "base"), ("Accuracy", "Avg")] == pytest.approx(
        (32.4 + 67.5 + 41.5 + 53.4 + 48.4 + 27.6) / 6
    )
    assert [c for _, c in full.missing()] == [("Recall", "SWDE")] * 6
    assert render.na_reasons(full) == [("no records for Recall SWDE", [render._row_name(r) for r in full.index])]


def test_ablation_niah_average_runs_over_the_evaluated_tasks():
    """Ablations on NIAH with two of the four families evaluated: Table 6 averages those two (S 10 and MK 30 at
    every length: 20); over all four, as without `niah_tasks`, no cell is complete."""
    evaluated = ("niah_single_1", "niah_multikey_1")
    rows = [
        record("deltanet", {**col.where, "task": task, "length_label": label}, 0, score)
        for col in specs(ablation_family="niah")["table6"].cols
        for task, score in zip(evaluated, (10.0, 30.0))
        for label in col.where["length_label"]
    ]
    two = build_all(records_frame(rows), ablation_family="niah", niah_tasks=evaluated)["table6"]
    assert two.mean.loc["deltanet"].to_numpy().tolist() == [[20.0, 20.0]]
    assert two.spec.unit == "NIAH average (2 families x 3 lengths) (%)" and "(2 families" in two.spec.notes[0]
    assert build_all(records_frame(rows), ablation_family="niah")["table6"].mean.loc["deltanet"].isna().to_numpy().all()


def test_ablation_tables_compare_every_column_at_the_ablation_seeds():
    """REFINE at seeds 0-2 (30, 20, 20), the binary-reward variant at seed 0 alone (25): with the ablation seeds
    (0,) both Table 6 columns hold seed 0 (30 vs 25); without, REFINE's column is its 3-seed mean (23.3), which
    a variant run at one seed would be compared with across seeds. Table 4 keeps REFINE's three seeds."""
    cols = {c.label: c for c in specs(ablation_family="qa")["table6"].cols}
    rows = [
        record("lact", {**cols["R^φ (cos)"].where, "task_key": key, "length_label": label}, seed, score)
        for seed, score in ((0, 30.0), (1, 20.0), (2, 20.0))
        for key in ("squad", "hotpot")
        for label in cols["R^φ (cos)"].where["length_label"]
    ] + [
        record("lact", {**cols["R^binary"].where, "task_key": key, "length_label": label}, 0, 25.0)
        for key in ("squad", "hotpot")
        for label in cols["R^binary"].where["length_label"]
    ]
    paired = build_all(records_frame(rows), ablation_family="qa", ablation_seeds=(0,))["table6"]
    assert paired.mean.loc["lact"].to_numpy().tolist() == [[25.0, 30.0]]
    assert paired.n.loc["lact"].to_numpy().tolist() == [[1.0, 1.0]]
    assert "every column at seed 0 (ablations.seeds)" in paired.spec.notes[0]
    every = build_all(records_frame(rows), ablation_family="qa")["table6"]
    assert every.mean.loc["lact"].to_numpy()[0].tolist() == pytest.approx([25.0, 70.0 / 3])
    table4 = build_all(records_frame(rows), ablation_family="qa", ablation_seeds=(0,))["table4"]
    assert table4.n.loc[("lact", "REFINE", "–", "–"), ("SQuADQA", "Avg")] == 3  # other tables keep every seed


def test_huge_values_render_in_exponent_form():
    """A perplexity of 6.9e9 (a model that misses every multi-token answer) and its interval stay readable."""
    assert render._cell(6864138835.6, 1766194772.9, False, "md") == "6.9e+09 ± 1.8e+09"
    assert render._cell(690.5, 20.8, True, "md") == "**690.5** ± 20.8"
    assert render._num(-2.5e7, signed=True) == "-2.5e+07" and render._num(float("nan")) == "n/a"
