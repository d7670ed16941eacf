"""The default's pretraining recipe teaches recall: a base model trained as `config/config.yaml` trains its
DeltaNet (its `pretrain_corpus` style mix, one document per row, the loss on each needle's answer, the tied head),
at a smaller size (a 1024-token BPE, 600 steps of 16 documents, ~3 min on one thread),
predicts a 7-digit number it saw once far better when the needle states it than when the needle states another
number, on held-out needle documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from refine.data.corpus import synthetic_corpus
from refine.data.tokenizer import save_tokenizer, train_tokenizer
from refine.train import stages
from refine.train.config import PretrainConfig
from refine.workflow_config import pretrain_corpus_section

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "config.yaml").read_text())
RECIPE = pretrain_corpus_section(DEFAULT, "deltanet")
STEPS, BATCH, LENGTH = 600, 16, 256


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recall")
    tok = train_tokenizer(synthetic_corpus(60, 0, n_words=600)["text"], vocab_size=1024)
    save_tokenizer(tok, root / "tokenizer")
    sizes = {"tokenizer": tok, "length": LENGTH, "min_length": RECIPE["min_length"]}
    synthetic_corpus(STEPS * BATCH, RECIPE["seed"], style_weights=RECIPE["style_weights"], **sizes).to_parquet(
        root / "pretrain.parquet"
    )
    cfg = PretrainConfig.from_dict(
        {
            **{k: v for k, v in DEFAULT["pretrain"].items() if k != "steps"},
            "steps": STEPS,
            "batch_size": BATCH,
            "micro_batch_size": BATCH,
            "max_length": LENGTH,
            "threads": 1,
            "model": DEFAULT["base"]["tiny"]["deltanet"],
        }
    )
    stages.pretrain(cfg, arch="deltanet", tokenizer=root / "tokenizer", data=root / "pretrain.parquet", out=root / "m")
    held_out = synthetic_corpus(48, 99, style_weights={"needle": 1}, **sizes)
    return stages.load_pretrained(root / "m"), held_out


def _answer_logprob(model, tok, context: str, answer: str) -> float:
    """Mean log-probability per token of `answer` after `context` (teacher-forced)."""
    ctx, ans = (tok(t, add_special_tokens=False)["input_ids"] for t in (context, answer))
    with torch.no_grad():
        logits = model(torch.tensor([ctx + ans])).logits[0, len(ctx) - 1 : -1]
    return torch.log_softmax(logits.float(), -1)[range(len(ans)), ans].mean().item()


def test_the_default_recipe_learns_to_recall_a_needle_seen_once(trained):
    """Paired by held-out document: the number's log-probability when the needle states it, against the same
    document whose needle states another number (a model that ignores the context scores both alike)."""
    (model, tok), docs = trained
    gains = []
    for text, start in zip(docs["text"], docs["answer_start"]):
        number = re.fullmatch(r" (\d{7})\.", text[start:]).group(1)
        other = f"{(int(number) + 4_321_987) % 9_000_000 + 1_000_000}"
        context = text[:start]
        gains.append(
            _answer_logprob(model, tok, context, text[start:])
            - _answer_logprob(model, tok, context.replace(number, other), text[start:])
        )
    gain = torch.tensor(gains)
    assert gain.mean() > 1.0 and (gain > 0).float().mean() > 0.9, f"nats per token gained: {gain.mean():.2f}"
