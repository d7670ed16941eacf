"""Experiment identity: names round-trip through the templates, paths, method variants, record fields."""

import re

import pytest

from refine import experiment as X
from refine.evaluate.cells import Cell, make_cells, record_fields
from refine.rl.config import RefineConfig


@pytest.mark.parametrize(
    "name, stage, method, seed, task, length",
    [
        ("base", "base", "none", 0, None, None),
        ("mid-sft-s2", "mid", "sft", 2, None, None),
        ("mid-refine_uniform_k3-s0", "mid", "refine_uniform_k3", 0, None, None),
        ("post-ruler_squadqa-4096-nested_refine-s1", "post", "nested_refine", 1, "ruler_squadqa", 4096),
    ],
)
def test_names_parse_and_rebuild(name, stage, method, seed, task, length):
    model = X.parse_model(name)
    assert (model.stage, model.method, model.seed, model.task, model.length) == (stage, method, seed, task, length)
    assert model.name == name
    assert re.fullmatch(X.name_pattern("base", "mid", "post"), name)
    assert model.fields() == {"model": name, "stage": stage, "method": method, "seed": seed,
                              "post_task": task, "post_length": length}  # fmt: skip


def test_builders_match_the_parser_and_the_wildcard_patterns():
    assert X.mid_name("refine", 3) == "mid-refine-s3" and X.parse_model("mid-refine-s3") == X.ModelId(
        "mid", "refine", 3
    )
    assert X.post_name("ruler_hotpotqa", 1024, "sft", 0) == "post-ruler_hotpotqa-1024-sft-s0"
    assert X.mid_name("{method}", "{seed}") == "mid-{method}-s{seed}"  # the same builders make Snakemake patterns
    assert not re.fullmatch(X.name_pattern("base", "mid"), "post-ruler_hotpotqa-1024-sft-s0")
    assert X.record_path("results/e", "lact", "base", "qa", "t", 512, "sft") == (
        "results/e/evals/lact/base/qa/t_512_ttt-sft.json"
    )
    assert X.metrics_path("results/e", "lact", "mid-sft-s0") == "results/e/train/lact/mid-sft-s0/metrics.jsonl"
    for bad in ("final", "mid-sft", "post-a-b-sft-s0", "mid-SFT-s0"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            X.parse_model(bad)


def test_method_variants_override_the_stage_config():
    base = RefineConfig(c=8, k=5)
    assert X.resolve_method("sft", base) == ("sft", base) and X.resolve_method("refine", base) == ("refine", base)
    method, cfg = X.resolve_method("refine_uniform_k3", base)
    assert method == "refine" and (cfg.sampling, cfg.k, cfg.c) == ("uniform", 3, 8)
    assert X.resolve_method("refine_binary", base)[1].reward == "binary"
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        X.resolve_method("refine_fast", base)
    with pytest.raises(ValueError, match="--method must be"):
        X.resolve_method("nested_refine", base)


def test_record_fields_carry_identity_and_refine_settings():
    cell = Cell("qasper", 4096, "16K", "qasper.parquet", "r.json")
    trained = X.refine_fields(RefineConfig(c=4, k=3, reward="binary"))
    fields = record_fields(experiment="e", arch="lact", model="mid-refine_c4-s2", cell=cell, family="longbench",
                           ttt="refine", model_run={"stage": "mid", **trained}, ttt_run=RefineConfig(k=7))  # fmt: skip
    assert (fields["stage"], fields["method"], fields["seed"], fields["post_task"]) == ("mid", "refine_c4", 2, None)
    assert (fields["refine_c"], fields["refine_k"], fields["refine_reward"], fields["refine_rollout"]) == (
        4,
        3,
        "binary",
        "snapshot",
    )
    assert (fields["ttt_refine_k"], fields["ttt_refine_c"]) == (7, 8)
    base = record_fields(experiment="e", arch="lact", model="base", cell=cell, family="longbench")
    assert base["refine_k"] is None and base["ttt_refine_k"] is None and base["seed"] == 0
    with pytest.raises(ValueError, match="ttt 'maybe'"):
        record_fields(experiment="e", arch="lact", model="base", cell=cell, family="qa", ttt="maybe")


def test_cells_from_parallel_lists():
    cells = make_cells(["a", "b"], [512], ["4K"], None, ["x.json", "y.json"])
    assert [(c.task, c.length, c.data, c.out) for c in cells] == [
        ("a", 512, None, "x.json"),
        ("b", 512, None, "y.json"),
    ]
    with pytest.raises(ValueError, match="--length: 2 values for 3 --out"):
        make_cells(["a"], [1, 2], ["4K"], None, ["x", "y", "z"])


def test_training_stamps_its_identity_into_checkpoint_and_metrics(toy, tmp_path):
    import argparse
    import json

    from refine.checkpoint import run_info
    from refine.commands import train

    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers())
    cfg = {"batch_size": 2, "max_length": 64, "steps": 1, "threads": 1, "val_before_train": False,
           "refine": {"mini_batch_size": 2, "c": 2, "margin": 8}}  # fmt: skip
    args = parser.parse_args(
        [
            "train",
            "--stage",
            "mid",
            "--arch",
            "deltanet",
            "--model-name",
            "mid-refine_k3-s1",
            "--base",
            str(toy["base"]),
            "--data",
            str(toy["corpus"]),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "m.jsonl"),
            "--cfg",
            json.dumps(cfg),
        ]  # fmt: skip
    )
    assert args.func(args) == 0 and (args.method, args.seed) == ("refine_k3", 1)
    stamped = run_info(tmp_path / "out")
    assert (stamped["arch"], stamped["stage"], stamped["method"], stamped["seed"]) == (
        "deltanet",
        "mid",
        "refine_k3",
        1,
    )
    assert (stamped["refine_k"], stamped["refine_c"], stamped["refine_reward"]) == (3, 2, "cosine")
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert rows and all(r["model"] == "mid-refine_k3-s1" and r["seed"] == 1 and r["refine_k"] == 3 for r in rows)
    args = parser.parse_args(["train", "--stage", "mid", "--model-name", "mid-sft-s0", "--seed", "2"])
    with pytest.raises(ValueError, match="--seed 2 contradicts --model-name mid-sft-s0"):
        args.func(args)
