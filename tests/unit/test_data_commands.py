"""`refine data <what>` end to end at toy sizes: corpus -> tokenizer -> corpus/niah/qa, LongBench copy."""

import argparse
import json

import pytest

from refine.commands import data
from refine.data.io import read_table
from refine.data.tokenizer import load_tokenizer


def run(*argv):
    parser = argparse.ArgumentParser()
    data.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *map(str, argv)])
    return args.func(args)


def test_pipeline(tmp_path):
    words, tok = tmp_path / "words.parquet", tmp_path / "tok"
    assert run("corpus", "--cfg", '{"num_train": 20, "n_words": 600}', "--out", words) == 0
    cfg = tmp_path / "tok.yaml"
    cfg.write_text("vocab_size: 800\n")
    assert run("tokenizer", "--cfg", cfg, "--corpus", words, "--out", tok) == 0
    assert len(load_tokenizer(tok)) == 800
    train, val = tmp_path / "train.parquet", tmp_path / "val.jsonl"
    assert (
        run(
            "corpus",
            "--cfg",
            '{"num_train": 4, "num_val": 2, "length": 512}',
            "--tokenizer",
            tok,
            "--out",
            train,
            "--val-out",
            val,
        )
        == 0
    )
    assert len(read_table(train, ["text"])) == 4 and len(read_table(val, ["text"])) == 2
    niah_cfg = {
        "tasks": ["niah_single_1", "niah_multivalue"],
        "lengths": [512],
        "num_samples": 2,
        "tokens_to_generate": 32,
    }
    assert run("niah", "--cfg", json.dumps(niah_cfg), "--tokenizer", tok, "--out", tmp_path / "niah") == 0
    rows = read_table(tmp_path / "niah" / "niah_multivalue_512.jsonl", ["input", "outputs", "gen_prefix"])
    assert len(rows) == 2 and len(rows["outputs"][0]) == 4
    qa_cfg = {"lengths": [512], "train_samples": 3, "test_samples": 2}
    assert run("qa", "--cfg", json.dumps(qa_cfg), "--tokenizer", tok, "--out", tmp_path / "qa") == 0
    assert len(read_table(tmp_path / "qa" / "ruler_hotpotqa_512_train.parquet")) == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_local_eval_files(tmp_path, eval_data):
    cfg = {"local_dir": str(eval_data / "longbench"), "tasks": ["trec", "narrativeqa"]}
    assert run("longbench", "--cfg", json.dumps(cfg), "--out", tmp_path / "lb") == 0
    summary = read_table(tmp_path / "lb" / "summary.jsonl").set_index("task")
    assert summary.loc["narrativeqa"].to_dict() == {"rows": 61, "evaluated": 56}
    local = tmp_path / "ruler"  # ReFINE's test files, plus stand-ins for its (absent, >4 MiB) train files
    local.mkdir()
    for task in ("ruler_squadqa", "ruler_hotpotqa"):
        test = eval_data / "ruler_qa" / f"{task}_lact_4096_200_test.parquet"
        (local / test.name).symlink_to(test)
        (local / f"{task}_lact_4096_1600_train.parquet").symlink_to(test)
    cfg = {"source": "local", "local_dir": str(local), "model": "lact", "lengths": [4096],
           "train_samples": 1600, "test_samples": 200}  # fmt: skip
    assert run("qa", "--cfg", json.dumps(cfg), "--out", tmp_path / "qa") == 0
    assert len(read_table(tmp_path / "qa" / "ruler_squadqa_4096_test.parquet")) == 200
    assert (tmp_path / "qa" / "ruler_hotpotqa_4096_train.parquet").is_file()
    cfg["local_dir"] = str(eval_data / "ruler_qa")  # no train files there: the error names the file
    with pytest.raises(FileNotFoundError, match="ruler_squadqa_lact_4096_1600_train.parquet"):
        run("qa", "--cfg", json.dumps(cfg), "--out", tmp_path / "qa2")


def test_bad_config_and_paths(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        run("niah", "--cfg", '{"lenghts": [512]}', "--tokenizer", tmp_path, "--out", tmp_path)
    with pytest.raises(FileNotFoundError, match="local_dir"):
        run("longbench", "--cfg", '{"source": "local", "local_dir": "/nonexistent"}', "--out", tmp_path / "lb")
    with pytest.raises(ValueError, match="this source needs --tokenizer"):  # auto -> hub, which counts tokens
        run("longbench", "--cfg", '{"local_dir": "/nonexistent"}', "--out", tmp_path / "lb")
