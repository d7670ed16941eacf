"""Generation engine (batching, drop_last, hook order, truncation, padding, EOS), QA/LongBench runner and
`refine evaluate qa|longbench`, with a character-level stub tokenizer and a stub model."""

import argparse
import json
import logging

import pandas as pd
import pytest
import torch

from refine import checkpoint
from refine.commands import evaluate as cmd
from refine.data.io import read_rows
from refine.evaluate.generation import GenerationConfig, batch_ranges, generate_responses
from refine.evaluate.runner import evaluate_longbench, evaluate_qa

PAD, EOS = 0, 1


class CharTokenizer:
    """One token per character (id = ord + 2); 0 = pad, 1 = EOS."""

    pad_token_id, eos_token_id = PAD, EOS

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [[ord(c) + 2 for c in t] for t in texts]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i - 2) for i in ids if not (skip_special_tokens and i in (PAD, EOS)))


class StubModel(torch.nn.Module):
    """`generate` answers `reply(prompt)` then EOS then junk; logs every call in `events`."""

    def __init__(self, reply, events=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.reply, self.events, self.calls = reply, events if events is not None else [], []

    def generate(
        self,
        input_ids,
        attention_mask=None,
        max_new_tokens=None,
        do_sample=True,
        eos_token_id=None,
        pad_token_id=None,
        **ignored,
    ):
        assert do_sample is False and eos_token_id == EOS and pad_token_id == PAD and not self.training
        tok = CharTokenizer()
        prompts = [tok.decode(row[mask.bool()].tolist()) for row, mask in zip(input_ids, attention_mask)]
        self.calls.append(
            {"prompts": prompts, "input_ids": input_ids, "mask": attention_mask, "max_new": max_new_tokens}
        )
        self.events.append(("generate", prompts))
        new = torch.full((len(prompts), max_new_tokens), PAD, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids = tok([self.reply(p)], add_special_tokens=False)["input_ids"][0] + [EOS] + [ord("!") + 2] * 3
            ids = ids[:max_new_tokens]
            new[i, : len(ids)] = torch.tensor(ids)
        return torch.cat([input_ids, new], dim=1)


def test_batch_ranges():
    assert batch_ranges(10, 4, True) == [range(4), range(4, 8)]
    assert batch_ranges(10, 4, False) == [range(4), range(4, 8), range(8, 10)]
    assert batch_ranges(3, 8, True) == []


def test_batches_in_order_drop_last_and_hook_before_each_batch():
    events = []
    model = StubModel(lambda p: p.upper(), events)
    prompts = [f"p{i}" for i in range(10)]
    cfg = GenerationConfig(max_prompt_length=16, batch_size=4, pad_to_budget=False)
    out = generate_responses(
        model,
        CharTokenizer(),
        prompts,
        cfg,
        before_batch=lambda b: events.append(("hook", b.indices, b.prompts)),
    )
    assert out == [p.upper() for p in prompts[:8]]
    assert events == [
        ("hook", [0, 1, 2, 3], prompts[:4]),
        ("generate", prompts[:4]),
        ("hook", [4, 5, 6, 7], prompts[4:8]),
        ("generate", prompts[4:8]),
    ]
    cfg.drop_last = False
    assert len(generate_responses(model, CharTokenizer(), prompts, cfg)) == 10


def test_right_truncation_left_padding_eos_and_per_prompt_budget(caplog):
    model = StubModel(lambda p: "yes")
    model.train()
    cfg = GenerationConfig(max_prompt_length=5, max_new_tokens=8, batch_size=2)
    with caplog.at_level(logging.WARNING):
        out = generate_responses(
            model, CharTokenizer(), ["ab", "abcdefgh"], cfg, source="qa.parquet", max_new_tokens=[8, 2]
        )
    assert "qa.parquet: field 'prompt': 1 of 2 rows exceed 5 tokens" in caplog.text
    call = model.calls[0]
    assert call["prompts"] == ["ab", "abcde"]  # first tokens kept
    assert call["input_ids"].shape == (2, 5)  # padded to the budget
    assert (
        call["mask"].tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]] and call["input_ids"][0, :3].tolist() == [PAD] * 3
    )
    assert call["max_new"] == 8
    assert out == ["yes", "ye"]  # stops at EOS; the second prompt's own budget is 2
    assert model.training  # mode restored


def _qa_rows():
    return [{"index": 10 + i, "prompt": f"Q{i}", "answer": [f"A{i}", "alt"], "task": "ruler_squadqa"} for i in range(4)]


def test_evaluate_qa_scores_and_examples():
    model = StubModel(lambda p: "a0 is it" if p == "Q0" else ("x\nA1" if p == "Q1" else "ALT"))
    rec = evaluate_qa(model, CharTokenizer(), _qa_rows(), GenerationConfig(max_prompt_length=8, batch_size=2))
    assert (rec["family"], rec["task"], rec["metric"], rec["n"]) == (
        "qa",
        "ruler_squadqa",
        "string_match_part",
        4,
    )
    assert [e["score"] for e in rec["examples"]] == [1.0, 0.0, 1.0, 1.0] and rec["score"] == 75.0
    assert rec["examples"][1] == {
        "index": 11,
        "prediction": "x\nA1",
        "references": ["A1", "alt"],
        "score": 0.0,
    }


def test_bad_rows_name_source_row_and_field():
    rows = _qa_rows()
    del rows[2]["answer"]
    with pytest.raises(ValueError, match=r"f\.parquet: row 2 lacks field\(s\) \['answer'\]"):
        evaluate_qa(StubModel(str), CharTokenizer(), rows, source="f.parquet")
    with pytest.raises(ValueError, match="row 0 field 'answer' must be a non-empty list"):
        evaluate_qa(StubModel(str), CharTokenizer(), [{"prompt": "p", "answer": "A"}])
    with pytest.raises(ValueError, match="qa: 4 rows, fewer than one batch of 8"):
        evaluate_qa(StubModel(str), CharTokenizer(), _qa_rows(), source="qa")
    with pytest.raises(ValueError, match="rows mix tasks"):
        evaluate_longbench(
            StubModel(str),
            CharTokenizer(),
            [{"prompt": "p", "answers": ["a"], "task": t} for t in ("trec", "lcc")],
        )


def test_longbench_on_real_trec_rows(eval_data):
    rows = read_rows(eval_data / "longbench" / "trec_16384.parquet")[:12]
    assert isinstance(rows[0]["answers"], list)
    model = StubModel(lambda p: f"\n{rows[0]['answers'][0]}\nmore")
    cfg = GenerationConfig(max_prompt_length=64, official_max_new_tokens=True)
    rec = evaluate_longbench(model, CharTokenizer(), rows, cfg, source="trec")
    assert rec["metric"] == "classification_score" and rec["n"] == 8  # 12 rows, batches of 8, drop_last
    assert model.calls[0]["max_new"] == 64  # trec's official max_gen_tokens
    expected = [1.0 if r["answers"][0] == rows[0]["answers"][0] else 0.0 for r in rows[:8]]
    assert [e["score"] for e in rec["examples"]] == expected


def _parser():
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser


def _cli(data, out, *extra):
    args = _parser().parse_args(
        f"evaluate qa --model ckpt --data {data} --out {out} --device cpu --arch lact --task ruler_squadqa "
        "--length 4096 --length-label 4K".split()
        + list(extra)
    )
    return args.func(args)


def test_cli_qa_writes_a_record(tmp_path, monkeypatch):
    data, out = tmp_path / "qa.parquet", tmp_path / "rec.json"
    pd.DataFrame(_qa_rows()).to_parquet(data)
    monkeypatch.setattr(checkpoint, "load_pretrained", lambda *a: (StubModel(lambda p: "A" + p[1:]), CharTokenizer()))
    assert _cli(data, out, "--model-name", "mid-sft-s3", "--cfg", '{"max_prompt_length": 16, "batch_size": 2}') == 0
    rec = json.loads(out.read_text())
    assert (rec["stage"], rec["method"], rec["seed"], rec["ttt"]) == ("mid", "sft", 3, "none")
    assert (rec["family"], rec["task"], rec["score"], rec["n"], rec["length"]) == (
        "qa",
        "ruler_squadqa",
        100.0,
        4,
        4096,
    )
    with pytest.raises(ValueError, match="unknown key"):
        _cli(data, out, "--model-name", "base", "--cfg", '{"max_new_token": 3}')
    with pytest.raises(SystemExit):  # test-time training is `refine train --stage ttt`, not an option here
        _cli(data, out, "--model-name", "base", "--ttt", "refine")


def test_cli_records_carry_the_checkpoints_run_and_are_written_cell_by_cell(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    run = {"stage": "mid", "method": "refine_k3", "seed": 1, "refine_k": 3, "refine_c": 8}
    (ckpt / "config.json").write_text(json.dumps({"model_type": "x", "refine_run": run}))
    data, out, later = tmp_path / "qa.parquet", tmp_path / "a.json", tmp_path / "b.json"
    pd.DataFrame(_qa_rows()).to_parquet(data)
    monkeypatch.setattr(checkpoint, "load_pretrained", lambda *a: (StubModel(lambda p: "A" + p[1:]), CharTokenizer()))
    args = _parser().parse_args(
        f"evaluate qa --model {ckpt} --device cpu --arch lact --model-name mid-refine_k3-s1 --task ruler_squadqa "
        f"--length 4096 --length-label 4K --data {data} {tmp_path / 'missing.parquet'} --out {out} {later}".split()
        + ["--cfg", '{"batch_size": 2}']
    )
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        args.func(args)
    rec = json.loads(out.read_text())  # the first cell's record survives the second cell's failure
    assert (rec["method"], rec["seed"], rec["refine_k"], rec["refine_c"], rec["refine_n"]) == (
        "refine_k3",
        1,
        3,
        8,
        None,
    )
    assert not later.exists()
