"""Evaluation with a real tiny checkpoint (refine.models tiny DeltaNet + our BPE tokenizer): batched generation
equals one-at-a-time generation, lm-eval's HFLM loads the checkpoint, and `refine evaluate` runs end to end."""

import argparse
import copy
import json
import random

import pandas as pd
import pytest
import torch

from refine.commands import evaluate as cmd
from refine.data.niah import generate_niah
from refine.data.text import filler_text
from refine.data.tokenizer import train_tokenizer
from refine.evaluate.generation import GenerationConfig, generate_responses
from refine.evaluate.lmeval import run_niah


@pytest.fixture(scope="module", params=["deltanet", "lact"])
def checkpoint(request, tmp_path_factory):
    """A random tiny model of each architecture saved with its tokenizer; returns (folder, model, tokenizer)."""
    from transformers import AutoModelForCausalLM

    from refine.models.tiny import tiny_config

    tokenizer = train_tokenizer([filler_text(random.Random(i), 200) for i in range(50)], vocab_size=384)
    try:
        config = tiny_config(request.param, len(tokenizer))
    except ValueError as err:  # an architecture not implemented yet
        pytest.skip(str(err))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    folder = tmp_path_factory.mktemp("ckpt") / request.param
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_batched_left_padded_generation_equals_single(checkpoint):
    folder, model, tokenizer = checkpoint
    if folder.name == "lact":  # official LaCT padding changes outputs by design (spec 10.6): test the
        config = copy.deepcopy(model.config)  # pad-invariant mode, which must not depend on padding
        config.pad_invariant = True
        invariant = type(model)(config).eval()
        invariant.load_state_dict(model.state_dict())
        model = invariant
    prompts = [filler_text(random.Random(100 + i), 10 + 7 * i) for i in range(4)]
    single = [
        generate_responses(
            model,
            tokenizer,
            [p],
            GenerationConfig(max_prompt_length=64, max_new_tokens=6, batch_size=1, pad_to_budget=False),
        )[0]
        for p in prompts
    ]
    assert len(set(single)) == len(prompts)  # distinct continuations, so the comparison means something
    for pad_to_budget in (False, True):
        cfg = GenerationConfig(max_prompt_length=64, max_new_tokens=6, batch_size=4, pad_to_budget=pad_to_budget)
        assert generate_responses(model, tokenizer, prompts, cfg) == single


def test_lm_eval_hflm_on_the_checkpoint(checkpoint, tmp_path):
    folder, model, tokenizer = checkpoint
    rows = generate_niah("niah_single_1", tokenizer, 1024, 2, tokens_to_generate=8)
    data = tmp_path / "niah.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run_niah(folder, {"niah_single_1": data}, 1024, max_gen_toks=8, device="cpu", dtype="float32")
    scores = res["niah_single_1"][1024]
    assert scores["n"] == 2 and 0.0 <= scores["score"] <= 100.0
    # lm-eval's greedy continuation of input + " " + gen_prefix equals our engine's
    prompts = [f"{r['input']} {r['gen_prefix']}" for r in rows]
    ours = generate_responses(
        model,
        tokenizer,
        prompts,
        GenerationConfig(max_prompt_length=1024, max_new_tokens=8, batch_size=1, pad_to_budget=False),
    )
    assert [e["prediction"] for e in scores["examples"]] == ours


def test_cli_longbench_end_to_end(checkpoint, tmp_path, eval_data):
    folder, _, _ = checkpoint
    data = tmp_path / "lcc.parquet"
    pd.read_parquet(eval_data / "longbench" / "lcc_16384.parquet").head(20).to_parquet(data)
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "rec.json"
    args = parser.parse_args(
        f"evaluate longbench --model {folder} --data {data} --out {out} --device cpu --arch {folder.name} "
        '--cfg {"max_prompt_length":128,"max_new_tokens":4} --model-name mid-refine-s1 --task lcc --length 16384 '
        "--length-label 16K".split()
    )
    assert args.func(args) == 0
    rec = json.loads(out.read_text())
    assert (rec["metric"], rec["n"], rec["arch"], rec["method"]) == (
        "code_sim_score",
        16,
        folder.name,
        "refine",
    )
    assert 0.0 <= rec["score"] <= 100.0 and len(rec["examples"]) == 16
