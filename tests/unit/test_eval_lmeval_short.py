"""Table E.1's short-context suite through the real lm-eval path: the local tasks built from the synthetic corpus,
lm-eval's metrics on a planted LM, and `refine evaluate short` on a tiny checkpoint, offline."""

import argparse
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from lm_eval.api.model import LM

from refine.commands import evaluate as cmd
from refine.data.corpus import synthetic_corpus
from refine.evaluate.lmeval.short import FACT, LOCAL_TASKS, ShortConfig, local_docs, run_short, split_cell
from refine.report.records import SHORT_COLUMNS

REPO = Path(__file__).resolve().parents[2]
LOCAL_CELLS = [c for c, (group, _) in SHORT_COLUMNS.items() if group == "Offline"]


@pytest.fixture(scope="module")
def texts():
    return synthetic_corpus(4, 1, n_words=300, style_weights={"prose": 1.0})["text"].tolist()


def test_local_docs_are_the_corpus_recalled_facts(texts):
    docs = local_docs(texts, num_choices=4, seed=0)
    assert docs == local_docs(texts, num_choices=4, seed=0) and set(docs) == set(LOCAL_TASKS)
    assert [d["text"] for d in docs["short_local_text"]] == texts
    cloze = docs["short_local_cloze"]
    assert len(cloze) >= 4 and docs["short_local_recall"] == cloze
    for d in cloze:  # the document up to "Answer:", then the answer and the full stop
        assert d["context"].endswith("? Answer:") and any(t.startswith(f"{d['context']} {d['answer']}.") for t in texts)
    kind = {d["answer"]: d["context"].rsplit("Question: ", 1)[1].split()[:3] for d in cloze}
    for d in docs["short_local_choice"]:
        assert len(set(d["choices"])) == len(d["choices"]) == 4
        assert d["choices"][d["label"]] == next(c["answer"] for c in cloze if c["context"] == d["context"])
        same = {a for a, k in kind.items() if k == kind[d["choices"][d["label"]]]}
        if len(same) >= 4:  # enough answers to facts asked the same way: every distractor is one
            assert set(d["choices"]) <= same
    with pytest.raises(ValueError, match="no recalled facts"):
        local_docs(["No questions here."])


def test_cells_name_a_task_and_a_metric():
    assert split_cell("arc_challenge-acc_norm") == ("arc_challenge", "acc_norm")
    with pytest.raises(ValueError, match="not {lm-eval task}-{metric}"):
        split_cell("piqa")


class Oracle(LM):
    """Knows each question's answer: log-likelihood -0.01 (greedy) for it and -5 for anything else, -0.5 per
    word for rolling documents, and generates the answer."""

    def __init__(self, answers: dict[str, str]):
        super().__init__()
        self.answers = answers

    def loglikelihood(self, requests):
        return [
            (-0.01, True) if cont == " " + self.answers[ctx] else (-5.0, False)
            for ctx, cont in (r.args for r in requests)
        ]

    def loglikelihood_rolling(self, requests):
        return [-0.5 * len(r.args[0].split()) for r in requests]

    def generate_until(self, requests):
        return [f" {self.answers[r.args[0]]}\nmore" for r in requests]


def test_lm_eval_scores_the_local_tasks(texts, tmp_path):
    corpus = tmp_path / "val.parquet"
    pd.DataFrame({"text": texts}).to_parquet(corpus)
    answers = {d["context"]: d["answer"] for d in local_docs(texts)["short_local_cloze"]}
    cells = [*LOCAL_CELLS, "short_local_choice-acc_norm", "short_local_text-bits_per_byte"]
    res = run_short(Oracle(answers), cells, 512, corpus=corpus, run_dir=tmp_path / "run")
    scores = {c: r["score"] for c, r in res.items()}
    assert scores["short_local_text-word_perplexity"] == pytest.approx(math.exp(0.5))  # exp(-sum ll / words)
    assert scores["short_local_cloze-perplexity"] == pytest.approx(math.exp(0.01))  # exp(-mean ll)
    for cell in ("short_local_cloze-acc", "short_local_choice-acc", "short_local_choice-acc_norm"):
        assert scores[cell] == 100.0, cell
    assert scores["short_local_recall-contains"] == 100.0
    assert res["short_local_cloze-acc"]["n"] == len(answers) and res["short_local_text-word_perplexity"]["n"] == 4
    assert res["short_local_cloze-perplexity"]["examples"][0] == {"index": 0, "value": pytest.approx(-0.01)}
    assert (tmp_path / "run" / "short_local_choice.yaml").is_file()
    with pytest.raises(
        ValueError, match=r"short_local_cloze has no metric 'contains' \(it reports \['acc', 'perplexity'\]\)"
    ):
        run_short(Oracle(answers), ["short_local_cloze-contains"], 512, corpus=corpus)
    with pytest.raises(ValueError, match="need corpus="):
        run_short(Oracle(answers), ["short_local_cloze-acc"], 512)


def test_cli_tiny_model_writes_one_record_per_cell(texts, tmp_path):
    """`refine evaluate short` on a random tiny DeltaNet with our BPE tokenizer: offline, one record per cell."""
    from transformers import AutoModelForCausalLM

    from refine.data.tokenizer import train_tokenizer
    from refine.models.tiny import tiny_config

    tokenizer = train_tokenizer(texts * 4, vocab_size=384)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("deltanet", len(tokenizer))).eval()
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    cut = [t[: m.end()] for t in texts if (m := FACT.search(t))][:2]  # each document up to its first recall
    pd.DataFrame({"text": cut}).to_parquet(tmp_path / "val.parquet")
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers(dest="command"))
    outs = [str(tmp_path / f"{c}.json") for c in LOCAL_CELLS]
    args = parser.parse_args(
        [
            "evaluate", "short", "--model", str(tmp_path / "ckpt"), "--device", "cpu",
            "--cfg", json.dumps({"limit": 2, "seed": 3}), "--arch", "deltanet", "--model-name", "mid-refine-s1",
            "--task", *LOCAL_CELLS, "--length", "128", "--length-label", "4K",
            "--data", str(tmp_path / "val.parquet"), "--out", *outs,
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    records = {r["task"]: r for r in (json.loads(Path(o).read_text()) for o in outs)}
    assert set(records) == set(LOCAL_CELLS)
    for cell, r in records.items():
        assert (r["family"], r["arch"], r["model"], r["stage"], r["method"], r["seed"]) == (
            "short", "deltanet", "mid-refine-s1", "mid", "refine", 1
        )  # fmt: skip
        assert (r["length"], r["length_label"], r["ttt"], r["metric"]) == (128, "4K", "none", split_cell(cell)[1])
        assert r["n"] == 2 and len(r["examples"]) == 2
    ppl = records["short_local_text-word_perplexity"]["score"]
    assert 1.0 < ppl < math.inf  # a random model over a 384-token vocabulary
    assert 1.0 < records["short_local_cloze-perplexity"]["score"] < math.inf
    for cell in ("short_local_cloze-acc", "short_local_choice-acc", "short_local_recall-contains"):
        assert records[cell]["score"] in (0.0, 50.0, 100.0), cell  # 2 documents


def test_configs_run_the_papers_cells_or_the_local_ones():
    """The schema's default is the paper's suite (spec 7.6); the offline configs name the local tasks."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["short_eval"]
    assert set(section["properties"]) == {f for f in ShortConfig.__dataclass_fields__} | {"tasks"}
    paper_cells = [c for c, (group, _) in SHORT_COLUMNS.items() if group != "Offline"]
    assert section["properties"]["tasks"]["default"] == paper_cells
    assert all(split_cell(c)[0] not in LOCAL_TASKS for c in paper_cells)
    config = {
        name: yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()) for name in ("config", "smoke", "paper")
    }
    assert config["paper"]["short_eval"]["tasks"] == paper_cells and config["paper"]["short_eval"]["limit"] is None
    assert config["config"]["short_eval"]["tasks"] == config["smoke"]["short_eval"]["tasks"] == LOCAL_CELLS
