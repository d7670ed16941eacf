"""Pretraining and mid-training on the toy: the loss falls, the metrics rows follow docs/design.md, and the
optimizer-step schedule of each method matches spec 10.4."""

from __future__ import annotations

import json

import pytest
import torch

from refine.train import stages
from refine.train.config import MidConfig, PretrainConfig

MID = {
    "batch_size": 4,
    "max_length": 64,
    "steps": 2,
    "val_every": 2,
    "val_batch_size": 4,
    "threads": 1,
    "optim": {"lr": 3e-3},
    "refine": {"mini_batch_size": 2},
}


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pretrain_lowers_the_ntp_loss_and_writes_a_checkpoint(toy, tmp_path):
    cfg = PretrainConfig.from_dict(
        {
            "batch_size": 4,
            "max_length": 64,
            "steps": 12,
            "threads": 1,
            "optim": {"lr": 5e-3, "warmup_steps": 2},
            "model": {"hidden_size": 32, "num_heads": 2},
        }
    )
    stages.pretrain(
        cfg,
        arch="deltanet",
        tokenizer=toy["tokenizer"],
        data=toy["pretrain"],
        out=tmp_path / "base",
        metrics=tmp_path / "m.jsonl",
    )
    train = rows(tmp_path / "m.jsonl")
    assert [r["step"] for r in train] == list(range(1, 13)) and {r["split"] for r in train} == {"train"}
    assert sum(r["loss"] for r in train[-3:]) < sum(r["loss"] for r in train[:3]) - 1.0
    assert 4 * 20 < train[0]["tokens"] <= 4 * 64 and train[0]["tokens_per_s"] > 0  # one document per row
    model, tok = stages.load_pretrained(tmp_path / "base")
    assert model.config.vocab_size == len(tok) and model.config.pad_token_id == tok.pad_token_id


def test_pretrain_from_a_checkpoint_continues_that_model(toy, tmp_path):
    """The long phase of a length curriculum (`pretrain_long`): `base` is the model trained on, not a fresh one."""
    cfg = PretrainConfig.from_dict({"batch_size": 4, "max_length": 64, "steps": 2, "threads": 1})
    common = {"arch": "deltanet", "tokenizer": toy["tokenizer"], "data": toy["pretrain"], "base": toy["base"]}
    stages.pretrain(cfg, **common, out=tmp_path / "long", metrics=tmp_path / "m.jsonl")
    (before, _), (after, _) = stages.load_pretrained(toy["base"]), stages.load_pretrained(tmp_path / "long")
    assert after.config.hidden_size == before.config.hidden_size != 128  # the toy's, not the tiny default's
    pairs = list(zip(before.state_dict().values(), after.state_dict().values(), strict=True))
    assert all(a.shape == b.shape for a, b in pairs) and not all(torch.equal(a, b) for a, b in pairs)
    assert [r["step"] for r in rows(tmp_path / "m.jsonl")] == [1, 2]
    with pytest.raises(ValueError, match="model overrides"):
        stages.pretrain(PretrainConfig.from_dict({"model": {"hidden_size": 32}}), **common, out=tmp_path / "x")


def test_mid_sft_and_refine_lower_the_validation_loss(toy, tmp_path):
    """Val rows at steps 0 and 2: NTP loss, sampled-token accuracy and reward statistics (spec 5.1)."""
    taken = {}
    for method, extra in (("sft", {}), ("sft", {"matched_steps": True}), ("refine", {})):
        name = method + ("-matched" if extra else "")
        trainer = stages.mid(
            MidConfig.from_dict({**MID, **extra}),
            method=method,
            base=toy["base"],
            data=toy["corpus"],
            val_data=toy["val"],
            out=tmp_path / name,
            metrics=tmp_path / f"{name}.jsonl",
        )
        taken[name] = trainer.opt.taken
        val = [r for r in rows(tmp_path / f"{name}.jsonl") if r["split"] == "val"]
        assert [r["step"] for r in val] == [0, 2]
        assert val[1]["loss"] < val[0]["loss"]
        assert all(0 <= r["ntp_acc"] <= 1 and -1 <= r["reward_cosine_mean"] <= 1 for r in val)
        assert (tmp_path / name / "config.json").is_file() and (tmp_path / name / "tokenizer.json").is_file()
    # official schedule: SFT 1 step per batch, REFINE one per mini-batch (4 / 2); matched: SFT also 2
    assert taken == {"sft": 2, "sft-matched": 4, "refine": 4}
    refine_train = [r for r in rows(tmp_path / "refine.jsonl") if r["split"] == "train"]
    assert {"reward_cosine_mean", "ppo_loss", "ntp_loss", "optimizer_steps"} <= set(refine_train[0])


def test_lact_pretrains_and_mid_trains_with_refine(toy, tmp_path):
    """The same stages on the other architecture: a tiny LaCT from scratch, then a REFINE mid-training step."""
    cfg = PretrainConfig.from_dict(
        {
            "batch_size": 4,
            "max_length": 64,
            "steps": 4,
            "threads": 1,
            "optim": {"lr": 5e-3},
            "model": {"hidden_size": 32},
        }
    )
    stages.pretrain(cfg, arch="lact", tokenizer=toy["tokenizer"], data=toy["pretrain"], out=tmp_path / "base")
    trainer = stages.mid(
        MidConfig.from_dict({**MID, "steps": 1}),
        method="refine",
        base=tmp_path / "base",
        data=toy["corpus"],
        val_data=toy["val"],
        out=tmp_path / "mid",
        metrics=tmp_path / "m.jsonl",
    )
    assert trainer.opt.taken == 2 and stages.load_pretrained(tmp_path / "mid")[0].config.model_type == "lact_swiglu"
    assert [r["split"] for r in rows(tmp_path / "m.jsonl")] == ["val", "train"]
