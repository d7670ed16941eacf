"""Claim verdicts decided by intervals: records with per-example scores and known differences give PASS, FAIL,
INCONCLUSIVE, FLOOR, CEILING and NOT MEASURABLE; the intervals behind them cover at their nominal rate."""

import math

import numpy as np
import pandas as pd
import pytest
from test_report_synth import paper_records, record, run_report, write_records

from refine.report.claims import Outcome, decide, run_claims, to_markdown
from refine.report.records import LENGTHS, load_metrics, load_records, records_frame
from refine.report.stats import Z975, Effect, cell_half, compare, example_scores, t975
from refine.report.tables import build_all, specs

CLAIM = "2.niah_refine_gt_sft.S.lact"  # Table 3: REFINE mid-training > SFT on the S-NIAH Avg (3 lengths)
N = 64  # examples per cell


def niah(method: str, seed: int, hits: int, n: int = N, first: int = 0, shift: int = 0) -> list[dict]:
    """S-NIAH records of one mid-trained LaCT at every length: ``hits`` of ``n`` examples right (those from
    position ``shift`` on; examples indexed from ``first``)."""
    row = next(r for r in specs()["table3"].rows if r.where.get("method") == method)
    out = []
    for label in LENGTHS:
        rec = record("lact", {**row.where, "family": "niah", "task": "niah_single_1", "length_label": label}, seed, 0)
        rec["examples"] = [{"index": first + i, "score": float(shift <= i < shift + hits)} for i in range(n)]
        rec["score"], rec["n"] = 100 * hits / n, n
        out.append(rec)
    return out


def verdict(sft: dict[int, int], refine: dict[int, int], pipeline_only=(), first: int = 0, shift: int = 0):
    """The claim's row for per-seed hit counts of SFT and REFINE (REFINE's examples indexed from ``first``, its
    hits from position ``shift``)."""
    rows = [r for s, h in sft.items() for r in niah("sft", s, h)]
    rows += [r for s, h in refine.items() for r in niah("refine", s, h, first=first, shift=shift)]
    tables = build_all(records_frame(rows))
    tables["table3"].pipeline_only = pipeline_only
    return run_claims(tables, load_metrics(None)).set_index("claim").loc[CLAIM]


@pytest.mark.parametrize(
    "sft,refine,status,interval,shift",
    [
        ({0: 16, 1: 18, 2: 14}, {0: 40, 1: 41, 2: 37}, "PASS", "t over 3 paired seeds", 0),  # +37 points
        ({0: 40, 1: 41, 2: 37}, {0: 16, 1: 18, 2: 14}, "FAIL", "t over 3 paired seeds", 0),
        ({0: 20, 1: 26, 2: 22}, {0: 30, 1: 20, 2: 24}, "INCONCLUSIVE", "t over 3 paired seeds", 0),  # +2 +- 20
        ({0: 0, 1: 0, 2: 0}, {0: 0, 1: 0, 2: 0}, "FLOOR", "t over 3 paired seeds", 0),
        ({0: N, 1: N, 2: N}, {0: N, 1: N, 2: N}, "CEILING", "t over 3 paired seeds", 0),
        ({0: 13}, {0: 26}, "PASS", "samples paired by example, 1 seed", 0),  # 20.3 vs 40.6 from 3 x 64 examples
        ({0: 30}, {0: 33}, "PASS", "samples paired by example, 1 seed", 0),  # 9 more right of 192, none fewer
        ({0: 30}, {0: 33}, "INCONCLUSIVE", "samples paired by example, 1 seed", 16),  # 16 lost, 19 won per length
    ],
)
def test_verdicts_from_known_differences(sft, refine, status, interval, shift):
    row = verdict(sft, refine, shift=shift)
    diff = 100 * (np.mean(list(refine.values())) - np.mean(list(sft.values()))) / N
    assert row["status"] == status and row["interval"] == interval
    assert row["diff"] == pytest.approx(diff) and row["n_seeds"] == len(sft)
    assert row["ci95_lo"] <= row["diff"] <= row["ci95_hi"]
    if status in ("PASS", "FAIL"):
        assert row["ci_excludes_0"] and interval in row["why"]
    if status == "INCONCLUSIVE":
        assert row["ci95_lo"] < 0 < row["ci95_hi"] and "includes 0" in row["why"]
    if status in ("FLOOR", "CEILING"):
        assert "cannot decide" in row["why"]


@pytest.mark.parametrize("sft,refine", [({0: 5}, {0: 5}), ({0: 5, 1: 7, 2: 5}, {0: 5, 1: 7, 2: 5})])
def test_identical_scores_off_the_floor_say_so(sft, refine):
    """Both sides right on the same examples (one seed) or the same values per seed, at neither bound: the
    interval is [0, 0] and the verdict INCONCLUSIVE, saying why."""
    row = verdict(sft, refine)
    assert row["status"] == "INCONCLUSIVE" and row["diff"] == row["ci95_lo"] == row["ci95_hi"] == 0
    assert "score the same" in row["why"] and "interval [0, 0]" in row["why"]


def test_identical_scores_meet_a_tolerance():
    """A claim with a tolerance (no forgetting within 0.2 points) holds when both sides score the same."""
    same = Effect(0.0, 0.0, 40.0, 1, "samples paired by example, 1 seed")
    assert decide(Outcome(same, margin=0.2))[0] == "PASS"
    assert decide(Outcome(same))[0] == "INCONCLUSIVE"


def sd(hits: int) -> float:
    """Standard deviation (points) of N binary examples with ``hits`` right."""
    return pd.Series(example_scores([{"score": float(i < hits)} for i in range(N)], 100 * hits / N)).std()


def test_single_seed_interval_is_the_sampling_one():
    paired = verdict({0: 13}, {0: 26})  # the same examples: REFINE also gets SFT's 13 right, and 13 more
    d = pd.Series([100.0 * (13 <= i < 26) for i in range(N)])  # per-example differences at each length
    assert paired["ci95_hi"] - paired["diff"] == pytest.approx(Z975 * math.sqrt(3 * d.var() / N / 9))  # 3 lengths
    unpaired = verdict({0: 13}, {0: 26}, first=N)  # other examples: the two sides' variances add
    assert unpaired["interval"] == "samples, 1 seed" and unpaired["diff"] == paired["diff"]
    var = (sd(13) ** 2 + sd(26) ** 2) / N
    assert unpaired["ci95_hi"] - unpaired["diff"] == pytest.approx(Z975 * math.sqrt(3 * var / 9))
    assert unpaired["ci95_hi"] - unpaired["diff"] > paired["ci95_hi"] - paired["diff"]


def test_pipeline_only_reads_not_measurable_and_keeps_the_interval():
    row = verdict({0: 16, 1: 18, 2: 14}, {0: 40, 1: 41, 2: 37}, pipeline_only=("niah",))
    assert row["status"] == "NOT MEASURABLE"
    assert row["why"] == "not measurable at this scale: NIAH tests the pipeline only here (config report.pipeline_only)"
    assert row["ci95_lo"] > 0  # the data is still shown
    # a claim without records stays NOT RUN
    claims = run_claims(build_all(records_frame(niah("sft", 0, 1))), load_metrics(None)).set_index("claim")
    assert claims.loc["1.headline_mid.lact", "status"] == "NOT RUN"


def test_markdown_counts_every_verdict():
    row = verdict({0: 0, 1: 0, 2: 0}, {0: 0, 1: 0, 2: 0})
    md = to_markdown(row.to_frame().T.reset_index(names="claim"))
    assert md.split("\n")[2] == "1 FLOOR" and "| 2.niah_refine_gt_sft.S.lact | FLOOR | +0.00 [+0.00, +0.00] |" in md


def test_example_scores_only_where_the_examples_make_the_score():
    binary = [{"index": 10 + i, "score": float(i < 16)} for i in range(64)]
    assert example_scores(binary, 25.0) == {10 + i: 100.0 * (i < 16) for i in range(64)}
    assert sd(16) == pytest.approx(100 * math.sqrt(0.25 * 0.75 * 64 / 63))
    assert example_scores(binary, 30.0) is None  # e.g. a perplexity: not the mean of the values
    assert example_scores([{"value": 1}, {"value": 0}], 50.0) == {0: 100.0, 1: 0.0}  # lm-eval acc, by position
    assert example_scores([{"value": [-3.2, 10]}] * 2, 50.0) is None and example_scores([], 0.0) is None
    assert example_scores([{"index": 0, "score": 1.0}, {"index": 0, "score": 0.0}], 50.0) is None  # ambiguous


def test_table_cells_carry_examples_and_the_sampling_interval(tmp_path):
    rows = niah("sft", 0, 16) + [r for s in (0, 1, 2) for r in niah("refine", s, 30 + 2 * s)]
    loaded = load_records(write_records(rows, tmp_path))  # the report's path: JSON files with their examples
    assert loaded["example_scores"].map(len).eq(N).all() and loaded["score_sd"].notna().all()
    t3 = build_all(loaded)["table3"]
    sft, ref = ("lact", "+ SFT MidTr"), ("lact", "+ REFINE MidTr")
    assert t3.samples.loc[sft, ("S", "4K")] == N and t3.samples.loc[sft, ("S", "Avg")] == 3 * N
    assert t3.half.loc[sft, ("S", "4K")] == pytest.approx(Z975 * sd(16) / math.sqrt(N))
    assert t3.half.loc[sft, ("S", "Avg")] == pytest.approx(Z975 * sd(16) / math.sqrt(3 * N))  # 3 independent lengths
    seeds = pd.Series([100 * (30 + 2 * s) / N for s in (0, 1, 2)])
    assert t3.half.loc[ref, ("S", "4K")] == pytest.approx(t975(2) * seeds.std() / math.sqrt(3))  # over seeds
    assert t3.n.loc[ref, ("S", "4K")] == 3 and math.isnan(t3.half.loc[("lact", "base"), ("S", "4K")])


def _coverage(draw, truth: float, reps: int = 400) -> float:
    gen = np.random.default_rng(0)
    hits = 0
    for _ in range(reps):
        effect = draw(gen)
        hits += effect.lo <= truth <= effect.hi
    return hits / reps


def test_intervals_cover_at_their_nominal_rate():
    seeds = pd.Index([0, 1, 2])

    def paired(gen):  # per-seed values: a seed effect shared by both methods, +2 points for a, noise sd 3
        shared = gen.normal(50, 10, 3)
        a, b = shared + 2 + gen.normal(0, 3, 3), shared + gen.normal(0, 3, 3)
        return compare(pd.Series(a, index=seeds), pd.Series(b, index=seeds))

    def cell(x):
        points = pd.Series(100.0 * x)
        var = points.var() / len(points)
        return pd.DataFrame({"value": [points.mean()], "var": [var], "examples": [{(): (1.0, points)}]}, index=[0])

    def sampled(gen):  # one seed each: 64 binary examples at 50% vs 40%, on other prompts
        return compare(cell(gen.random(N) < 0.5), cell(gen.random(N) < 0.4).assign(examples=None))

    def by_example(gen):  # the same 64 prompts: a prompt's difficulty is shared, so the scores correlate
        u = gen.random(N)
        return compare(cell(u + gen.normal(0, 0.2, N) < 0.5), cell(u + gen.normal(0, 0.2, N) < 0.4))

    assert 0.92 <= _coverage(paired, 2.0) <= 0.98
    assert 0.91 <= _coverage(sampled, 10.0) <= 0.98
    assert by_example(np.random.default_rng(1)).interval == "samples paired by example, 1 seed"
    assert 0.91 <= _coverage(by_example, 10.0) <= 0.98
    assert cell_half(pd.DataFrame({"value": [25.0], "var": [4.0]}, index=[0])) == pytest.approx(2 * Z975)


def test_seeds_against_one_model_pair_by_example():
    """Five seeds against the one base model they start from, all scored on the same 64 prompts (a prompt's
    difficulty shared by every model, a seed effect on top): the interval adds the per-example differences'
    sampling variance to the seeds' spread, covers at its nominal rate, and is narrower than adding the base
    model's own sampling variance."""
    seeds = pd.Index(range(5))
    gen = np.random.default_rng(0)
    u, x = gen.random(10**6), gen.normal(0, math.hypot(0.05, 0.2), 10**6)
    truth = 100 * (np.mean(u + x < 0.5) - np.mean(u + gen.normal(0, 0.2, 10**6) < 0.4))

    def cell(hits: np.ndarray, index) -> pd.DataFrame:  # hits [seeds, N]
        points = [pd.Series(100.0 * h) for h in hits]
        return pd.DataFrame(
            {
                "value": [p.mean() for p in points],
                "var": [p.var() / N for p in points],
                "examples": [{(): (1.0, p)} for p in points],
            },
            index=index,
        )

    def draw(gen, examples=True):
        u = gen.random(N)
        shift = gen.normal(0, 0.05, (len(seeds), 1))
        many = cell(u + shift + gen.normal(0, 0.2, (len(seeds), N)) < 0.5, seeds)
        one = cell((u + gen.normal(0, 0.2, N) < 0.4)[None], pd.Index([0]))
        return compare(many, one if examples else one.assign(examples=None))

    effect = draw(np.random.default_rng(1))
    assert effect.interval == "t over 5 seeds vs one model, paired by example" and effect.n == 5
    assert 0.92 <= _coverage(draw, truth) <= 0.99
    narrower = [draw(np.random.default_rng(r)).half < draw(np.random.default_rng(r), False).half for r in range(50)]
    assert np.mean(narrower) > 0.9
    assert draw(np.random.default_rng(1), False).interval == "t over 5 seeds vs one model"


def test_pipeline_only_family_through_the_report_command(tmp_path):
    """`refine report {tables,claims,build} --pipeline-only longbench`: the LongBench tables, claims and page say
    so (the page from the claims made, without figures)."""
    write_records(paper_records(tables=("table3", "table5"), rng=0), tmp_path / "evals")
    out = tmp_path / "out"
    common = ["--records", str(tmp_path / "evals"), "--pipeline-only", "longbench"]
    for argv in (
        ["tables", *common, "--out", str(out / "tables")],
        ["claims", *common, "--out", str(out)],
        ["build", *common, "--out", str(out), "--figures", str(tmp_path), "--claims", str(out / "claims.csv")],
    ):
        assert run_report(*argv) == 0
    assert (
        "* Pipeline only: at this scale the LongBench cells test the pipeline only"
        in (out / "tables" / "table5_paper.md").read_text()
    )
    assert "Pipeline only" not in (out / "tables" / "table3.md").read_text()
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    longbench = claims.filter(regex=r"^(6\.longbench|5\.ttt_refine_gt_sft\.LongBench)", axis=0)
    assert len(longbench) == 4 and (longbench["status"] == "NOT MEASURABLE").all()
    assert longbench["ci95_lo"].notna().all()  # the interval is still there
    assert claims.loc["2.niah_refine_gt_sft.MK.lact", "status"] in ("PASS", "FAIL", "INCONCLUSIVE")
    html = (out / "report.html").read_text()
    assert 'class="badge NOT-MEASURABLE"' in html and html.count('class="pipeline"') == 1 + 5  # verdicts + 5 tables
    assert "<b>Tables 5, 6, 7, E.2, Fig. 5:</b> at this scale the LongBench cells test the pipeline only" in html
    assert "**Tables 5, 6, 7, E.2, Fig. 5**: at this scale" in (out / "report.md").read_text()
    one = tmp_path / "one"  # ablations on NIAH: Table 5 alone rests on LongBench
    build = ["build", *common, "--out", str(one), "--figures", str(tmp_path), "--claims", str(out / "claims.csv")]
    assert run_report(*build, "--ablation-family", "niah") == 0
    assert "<b>Table 5:</b> at this scale" in (one / "report.html").read_text()
    assert "**Table 5**: at this scale" in (one / "report.md").read_text()
