"""The report's summary facts (provenance) and the claim lines it shows (verdicts: refine.report.claims)."""

import json
import math

import pandas as pd
import torch
from safetensors.torch import save_file

from refine.report.provenance import collect, data_sources, job_times, parameter_count
from refine.report.records import records_frame
from refine.report.summary import claims_view, duration, params


def test_parameter_count_reads_safetensors_headers(tmp_path):
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, tmp_path / "model.safetensors")
    assert parameter_count(tmp_path) == 17
    assert parameter_count(tmp_path / "missing") is None


def test_collect_models_job_time_and_sources(tmp_path):
    base = tmp_path / "models" / "lact" / "base"
    base.mkdir(parents=True)
    save_file({"w": torch.zeros(10, 10)}, base / "model.safetensors")
    (base / "config.json").write_text(json.dumps({"model_type": "lact", "num_hidden_layers": 2, "hidden_size": 64}))
    for name in ("mid-sft-s0", "mid-refine-s0", "post-squadqa-1024-sft-s0"):
        (tmp_path / "models" / "lact" / name).mkdir()
    for rule, seconds in (("train_mid/lact/a.tsv", 60.0), ("train_mid/lact/b.tsv", 30.0), ("base_model/lact.tsv", 5)):
        path = tmp_path / "benchmarks" / rule
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    config = {"experiment": "x", "archs": ["lact"], "longbench": {"source": "local", "local_dir": "/data/lb"}}
    run = collect(tmp_path, records_frame([]), pd.DataFrame(), config)
    [model] = run.models
    assert (model.kind, model.params, model.trained) == ("lact", 100, {"mid": 2, "post": 1})
    assert run.job_time.to_dict("records")[0] == {"rule": "train_mid", "jobs": 2, "total_s": 90.0, "max_s": 60.0}
    assert run.job_time_total_s == 95.0 and run.experiment == "x" and len(run.config_hash) == 12
    assert run.data == {"longbench": "source=local, local_dir=/data/lb"} == data_sources(config)
    assert "torch" in run.versions and job_times(tmp_path / "nothing") is None


def test_claim_lines_and_formats():
    claims = pd.DataFrame(
        [
            {"claim": "3.q.lact", "status": "PASS", "why": "95% interval above 0", "statement": "LaCT: REFINE > SFT",
             "diff": 1.5, "ci95_lo": 0.5, "ci95_hi": 2.5, "rel_pct": 10.0, "n_seeds": 3, "ci_excludes_0": True,
             "paper_diff": 1.0, "paper_rel_pct": math.nan, "detail": ""},
        ]
    )  # fmt: skip
    [line] = claims_view(claims)
    assert claims_view(claims.assign(paper_rel_pct=""))[0] == line  # claims.csv read back: empty column as text
    assert (line["verdict"], line["why"], line["arch"], line["text"], line["ours"], line["paper"]) == (
        "PASS",
        "95% interval above 0",
        "LaCT",
        "REFINE > SFT",
        "+1.50 [+0.50, +2.50] (+10.0%)",
        "+1.00",
    )
    assert (duration(3725), duration(185), duration(12.34), params(1_234_567), params(1.4e9)) == (
        "1h 02m",
        "3m 05s",
        "12.3s",
        "1.23M",
        "1.4B",
    )
