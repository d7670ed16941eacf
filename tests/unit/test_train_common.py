"""Shared toy setup for the trainer tests (imported by the test_train_* modules; holds no tests).

Each module declares its own module-scoped `toy` fixture over `build_toy`.

A learnable toy: documents of templated sentences, a byte-level BPE trained on them, a tiny DeltaNet saved as
an HF checkpoint, and QA rows whose answer is stated in the prompt.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

ADJ = ["red", "blue", "green", "old", "new"]
NOUN = ["cat", "dog", "bird", "fish", "cow"]
VERB = ["runs", "sits", "eats", "sleeps"]
ADV = ["fast", "slowly", "well", "often"]
KEYS = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]

# `refine train ...` with only the train command group registered (independent of refine.cli's list).
TRAIN_SCRIPT = (
    "import sys, argparse\nfrom refine.commands.train import add_parser\n"
    "from refine.logs import setup_logging; setup_logging()\n"
    "p = argparse.ArgumentParser(); add_parser(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)
TRAIN_CLI = [sys.executable, "-c", TRAIN_SCRIPT, "train"]


def sentence(rng: random.Random) -> str:
    return f"the {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} {rng.choice(ADV)} ."


def document(rng: random.Random, n: int) -> str:
    return " ".join(sentence(rng) for _ in range(n))


def qa_row(rng: random.Random, i: int) -> dict:
    key, value = rng.choice(KEYS), rng.choice(NOUN)
    fact, question = f"the {key} is {value} .", f"question : what is the {key} ? answer :"
    prompt = f"{document(rng, 6)} {fact} {document(rng, 3)} {question}"
    return {"index": i, "prompt": prompt, "answer": [f" {value}"], "task": "toy_qa"}


def build_toy(root: Path) -> dict[str, Path]:
    """Write the toy files and a randomly initialised tiny DeltaNet checkpoint under `root`."""
    from transformers import AutoModelForCausalLM

    from refine.data.tokenizer import save_tokenizer, train_tokenizer
    from refine.models.tiny import tiny_config

    rng = random.Random(0)
    docs = [document(rng, 12) for _ in range(48)]
    paths = {name: root / f"{name}.parquet" for name in ("corpus", "val", "qa", "eval")}
    pd.DataFrame({"text": docs[:40]}).to_parquet(paths["corpus"])
    pd.DataFrame({"text": docs[40:]}).to_parquet(paths["val"])
    pd.DataFrame([qa_row(rng, i) for i in range(16)]).to_parquet(paths["qa"])
    pd.DataFrame([qa_row(rng, i) for i in range(20)]).to_parquet(paths["eval"])
    tok = train_tokenizer(
        docs + [r["prompt"] for r in [qa_row(rng, 0)]] + [" ".join(KEYS) + " question answer is :"],
        vocab_size=300,
        min_frequency=1,
    )
    paths["tokenizer"] = save_tokenizer(tok, root / "tokenizer")
    torch.manual_seed(0)
    config = tiny_config("deltanet", len(tok), hidden_size=32, num_heads=2)
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    model = AutoModelForCausalLM.from_config(config)
    paths["base"] = root / "base"
    model.save_pretrained(paths["base"])
    tok.save_pretrained(paths["base"])
    return paths


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved checkpoint."""
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


DIST_CFG = {
    "batch_size": 4,
    "max_length": 64,
    "steps": 1,
    "threads": 1,
    "optim": {"lr": 1e-2},
    "refine": {"mini_batch_size": 2},
    "val_every": 1,
    "val_batch_size": 4,
}


def torchrun(paths, run, method, nproc, *extra):
    """`refine train --stage mid` under torchrun; returns the saved weights."""
    script = run.parent / "train_cli.py"
    script.write_text(TRAIN_SCRIPT)
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
    ]
    cmd = [
        *launcher,
        "train",
        "--stage",
        "mid",
        "--method",
        method,
        "--base",
        str(paths["base"]),
        "--data",
        str(paths["corpus"]),
        "--out",
        str(run / "out"),
        "--metrics",
        str(run / "m.jsonl"),
        "--cfg",
        json.dumps(DIST_CFG),
        *extra,
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return weights(run / "out")
