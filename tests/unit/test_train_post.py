"""Post-training (spec 5.2) on the toy QA: answer-only SFT learns, and a nested step is the inner update on
the prompt followed by one answer-SFT step with the updated weights."""

from __future__ import annotations

import json

import torch

from refine.data.batching import encode_prompt_answer, encode_prompts
from refine.data.io import read_column
from refine.train import stages
from refine.train.config import PostConfig
from refine.train.distributed import Dist
from refine.train.trainer import BatchPlan, Trainer
from refine.train.updates import TextUpdate, sft_update

POST = {
    "batch_size": 4,
    "max_length": 96,
    "max_answer_length": 4,
    "threads": 1,
    "optim": {"lr": 3e-3},
    "refine": {"mini_batch_size": 2},
}


def test_answer_sft_lowers_the_answer_loss(toy, tmp_path):
    stages.post(
        PostConfig.from_dict({**POST, "steps": 8}),
        method="sft",
        base=toy["base"],
        data=toy["qa"],
        metrics=tmp_path / "m.jsonl",
    )
    losses = [json.loads(line)["loss"] for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2]) - 1.0


def test_nested_refine_is_inner_refine_then_answer_sft_in_one_step(toy, load_weights, tmp_path):
    cfg = PostConfig.from_dict({**POST, "steps": 1})
    trainer = stages.post(
        cfg,
        method="nested_refine",
        base=toy["base"],
        data=toy["qa"],
        out=tmp_path / "out",
        metrics=tmp_path / "m.jsonl",
    )
    assert trainer.opt.taken == 2 + 1  # 4 prompts / mini-batch 2 inner steps, then one answer step
    row = json.loads((tmp_path / "m.jsonl").read_text())
    assert {"inner_ppo_loss", "inner_ntp_loss", "reward_hybrid_mean", "loss", "grad_norm"} <= set(row)

    # the same step by hand: REFINE on the prompts, then answer-only SFT, nothing reverted
    model, tok = stages.load_pretrained(toy["base"])
    stages.seed_everything(0)
    manual = Trainer(model, cfg, Dist(), seed=0, total_steps=1)
    idx = BatchPlan.for_stage(16, cfg, seed=0).indices(0)
    prompts = [read_column(toy["qa"], "prompt")[i] for i in idx]
    answers = [read_column(toy["qa"], "answer")[i] for i in idx]
    TextUpdate("refine", cfg.refine)(manual, encode_prompts(prompts, tok, 96))
    sft_update(model, encode_prompt_answer(prompts, answers, tok, 96, 4), 2, 1, manual.opt)
    saved = load_weights(tmp_path / "out")
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items() if k in saved)


def test_nested_sft_takes_one_inner_and_one_answer_step(toy, tmp_path):
    trainer = stages.post(
        PostConfig.from_dict({**POST, "steps": 2}), method="nested_sft", base=toy["base"], data=toy["qa"]
    )
    assert trainer.opt.taken == 2 * (1 + 1)
