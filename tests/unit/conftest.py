"""Fixtures of the trainer tests: a learnable toy (templated documents, a byte-level BPE trained on them, a
tiny DeltaNet saved as an HF checkpoint, QA rows whose answer is stated in the prompt), the `refine train`
command line, checkpoint weights and a torchrun launcher."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
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
    paths = {name: root / f"{name}.parquet" for name in ("corpus", "val", "qa", "eval", "pretrain")}
    pd.DataFrame({"text": docs[:40]}).to_parquet(paths["corpus"])
    pretrain = [(document(rng, 3), 0) for _ in range(20)] + [
        (f"{prompt} {value}", len(prompt))
        for key, value in ((rng.choice(KEYS), rng.choice(NOUN)) for _ in range(20))
        for prompt in [f"the {key} is {value} . {document(rng, 1)} question : what is the {key} ? answer :"]
    ]  # pretraining documents within 64 tokens: prose (learn every token) and QA (learn the answer)
    pd.DataFrame(pretrain, columns=["text", "answer_start"]).to_parquet(paths["pretrain"])
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


def torchrun_command(run, nproc) -> list[str]:
    """The `torchrun ... refine train` launcher prefix (a script under `run`'s parent)."""
    script = run.parent / "train_cli.py"
    script.write_text(TRAIN_SCRIPT)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script)]


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, Path]:
    """Paths of the toy files (`corpus`, `val`, `qa`, `eval`, `pretrain`, `tokenizer`, `base`), built once per
    module."""
    return build_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture
def train_cli() -> list[str]:
    """The `refine train` command line (only the train group registered), a new list per test."""
    return list(TRAIN_CLI)


@pytest.fixture(scope="session")
def load_weights() -> Callable[[Path], dict[str, torch.Tensor]]:
    """`load_weights(checkpoint_dir)`: the tensors of a saved checkpoint."""
    return read_weights


@pytest.fixture
def dist_cfg() -> dict:
    """The mid-training config of the torchrun tests (a fresh copy per test)."""
    return json.loads(json.dumps(DIST_CFG))


@pytest.fixture
def mid_args(toy) -> Callable[..., list[str]]:
    """`mid_args(run, method, cfg, *extra)`: the `train --stage mid` arguments on the toy, writing under `run`."""

    def args(run: Path, method: str, cfg: dict, *extra: str) -> list[str]:
        return ["train", "--stage", "mid", "--method", method, "--base", str(toy["base"]), "--data",
                str(toy["corpus"]), "--out", str(run / "out"), "--metrics", str(run / "m.jsonl"),
                "--cfg", json.dumps(cfg), *extra]  # fmt: skip

    return args


@pytest.fixture
def torchrun_mid(mid_args, dist_cfg) -> Callable[..., dict[str, torch.Tensor]]:
    """`torchrun_mid(run, method, nproc, *extra_args)`: `refine train --stage mid` on the toy under torchrun with
    `dist_cfg`, writing under `run`; returns the saved weights."""

    def run_mid(run: Path, method: str, nproc: int, *extra: str) -> dict[str, torch.Tensor]:
        script = run.parent / "train_cli.py"
        script.write_text(TRAIN_SCRIPT)
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        cmd = [*launcher, str(script), *mid_args(run, method, dist_cfg, *extra)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        return read_weights(run / "out")

    return run_mid
