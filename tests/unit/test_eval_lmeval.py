"""RULER NIAH through the real lm-eval path (task YAMLs, TaskManager, simple_evaluate) with stand-in LMs."""

import argparse
import json
import re

import pytest
from lm_eval.api.model import LM

from refine.commands import evaluate as cmd
from refine.evaluate.lmeval import harness, run_builtin_niah, run_niah


class Planted(LM):
    """Answers every `generate_until` request with `answer(context)`; records the requests."""

    def __init__(self, answer):
        super().__init__()
        self.answer, self.requests = answer, []

    def generate_until(self, requests):
        self.requests += [r.args for r in requests]
        return [self.answer(r.args[0]) for r in requests]

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


def _write_niah(path, lengths):
    docs = [
        {
            "index": i,
            "input": f"The magic number is {1000 + i}. What is the magic number?",
            "outputs": [str(1000 + i)],
            "gen_prefix": "The magic number is",
            "max_length": n,
            "length": 12,
        }
        for i, n in enumerate(lengths)
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _needle(context):
    return re.search(r"magic number is (\d+)\.", context).group(1)


def test_planted_right_scores_100_and_wrong_scores_0(tmp_path):
    data = _write_niah(tmp_path / "niah.jsonl", [512, 512, 1024])
    right = Planted(lambda ctx: f" {_needle(ctx)}.\nmore")
    res = run_niah(
        right, {"niah_single_1": data, "niah_other": [data]}, 2048, max_gen_toks=16, run_dir=tmp_path / "run"
    )
    assert {n: s["score"] for n, s in res["niah_single_1"].items()} == {512: 100.0, 1024: 100.0}
    assert res["niah_single_1"][512]["n"] == 2 and res["niah_other"][1024]["n"] == 1
    assert res["niah_single_1"][1024]["examples"] == [
        {"index": 2, "prediction": " 1002.\nmore", "references": ["1002"], "score": 1.0}
    ]
    context, gen_kwargs = right.requests[0]
    assert context.endswith("What is the magic number? The magic number is")  # gen_prefix after " "
    assert gen_kwargs == {"do_sample": False, "temperature": 0.0, "max_gen_toks": 16, "until": []}
    assert (tmp_path / "run" / "niah_single_1.yaml").is_file()

    wrong = run_niah(Planted(lambda ctx: "no idea"), {"niah_single_1": data}, 2048)
    assert {n: s["score"] for n, s in wrong["niah_single_1"].items()} == {512: 0.0, 1024: 0.0}


def test_lm_eval_aggregate_equals_our_per_example_mean(tmp_path):
    from lm_eval.tasks import TaskManager

    data = _write_niah(tmp_path / "niah.jsonl", [512] * 4)
    names = harness.render_niah_tasks({"t": data}, tmp_path / "run")
    lm = Planted(lambda ctx: _needle(ctx) if ctx.count("1000") or ctx.count("1003") else "?")
    res = harness._evaluate(
        lm,
        list(names.values()),
        TaskManager(include_path=str(tmp_path / "run"), include_defaults=False),
        None,
    )
    assert res["results"]["local_t"]["512,none"] == 0.5
    assert harness.collect_scores(res, "local_t")[512]["score"] == 50.0


def test_bad_niah_files_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "x", "outputs": ["1"], "max_length": 8}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: missing field\(s\) \['gen_prefix'\]"):
        run_niah(Planted(str), {"t": bad}, 64)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        run_niah(Planted(str), {"t": tmp_path / "nope.jsonl"}, 64)


@pytest.mark.slow  # lm-eval indexes all its tasks and tries nltk's download: about a minute on 2 cores
def test_builtin_niah_single_1_offline(tmp_path):
    """The paper's route: lm-eval generates niah_single_1 with our tokenizer; an oracle reads the needle."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<eos>"]
    )
    tok.train_from_iterator(["The grass is green. The special magic number is 12345."] * 10, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(tmp_path / "tok")

    def oracle(ctx):
        key = re.search(r"magic number for (\S+) mentioned", ctx).group(1)
        return re.search(rf"magic numbers? for {re.escape(key)} is: (\d+)", ctx).group(1)

    res = run_builtin_niah(Planted(oracle), ["niah_single_1"], [512], 1024, tokenizer=tmp_path / "tok", limit=3)
    assert res["niah_single_1"][512]["score"] == 100.0 and res["niah_single_1"][512]["n"] == 3


def test_cli_niah_writes_a_record(tmp_path, monkeypatch):
    data = _write_niah(tmp_path / "niah.jsonl", [512, 512])
    seen = {}

    def fake_hflm(model_dir, max_length, **kwargs):
        seen.update(model_dir=model_dir, max_length=max_length, **kwargs)
        return Planted(lambda ctx: "1000")

    monkeypatch.setattr(harness, "load_hflm", fake_hflm)
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "r.json"
    args = parser.parse_args(
        f'evaluate niah --model ckpt --data {data} --out {out} --device cpu --cfg {{"max_gen_toks":32}} '
        "--arch deltanet --model-name base --task niah_single_1 --length 512 --length-label 512".split()
    )
    assert args.func(args) == 0
    assert seen == {
        "model_dir": "ckpt",
        "max_length": 544,
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 1,
    }
    rec = json.loads(out.read_text())
    assert (rec["family"], rec["metric"], rec["score"], rec["n"], rec["stage"], rec["seed"]) == (
        "niah",
        "string_match_all",
        50.0,
        2,
        "base",
        0,
    )
    args.length = [1024]
    with pytest.raises(ValueError, match=r"no niah_single_1 documents with max_length 1024 \(found \[512\]\)"):
        args.func(args)
