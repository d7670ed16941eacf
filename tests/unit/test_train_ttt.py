"""Test-time training (spec 5.3, 10.3): cumulative adaptation over the file vs per-batch reset, and the
`refine train --stage ttt` record."""

from __future__ import annotations

import json
import subprocess

import torch

from refine.data.batching import encode_prompts
from refine.data.io import read_column
from refine.evaluate.generation import Batch
from refine.train import stages
from refine.train.config import TTTConfig
from refine.train.distributed import Dist
from refine.train.trainer import Trainer
from refine.train.updates import TextUpdate

TTT = {"threads": 1, "optim": {"lr": 1e-2}, "generation": {"max_prompt_length": 160, "max_new_tokens": 4}}


def _batches(paths, tok):
    prompts = read_column(paths["eval"], "prompt")
    out = []
    for start in (0, 8):
        enc = encode_prompts(prompts[start : start + 8], tok, 160)
        out.append(
            Batch(
                list(range(start, start + 8)),
                prompts[start : start + 8],
                enc["input_ids"],
                enc["attention_mask"],
                4,
            )
        )
    return out


def _adapted(paths, reset, batches):
    """Weights and AdamW step count after the hook ran on `batches` (NTP-only TTT, deterministic)."""
    cfg = TTTConfig.from_dict({**TTT, "reset": reset})
    model, _ = stages.load_pretrained(paths["base"])
    trainer = Trainer(model, cfg, Dist(), seed=0, total_steps=len(batches))
    hook = stages.TestTimeTraining(trainer, TextUpdate("sft", cfg.refine), cfg.reset)
    for batch in batches:
        hook(batch)
    state = trainer.optimizer.state[next(model.parameters())]
    return {k: v.clone() for k, v in model.state_dict().items()}, int(state["step"])


def test_cumulative_keeps_adapting_and_per_batch_restarts(toy):
    _, tok = stages.load_pretrained(toy["base"])
    a, b = _batches(toy, tok)
    cumulative, steps_c = _adapted(toy, "cumulative", [a, b])
    per_batch, steps_p = _adapted(toy, "per_batch", [a, b])
    only_b, _ = _adapted(toy, "cumulative", [b])
    assert (steps_c, steps_p) == (2, 1)  # AdamW moments persist across batches only when cumulative
    assert all(torch.equal(per_batch[k], only_b[k]) for k in per_batch)  # reset = adapt on b from the start
    assert any(not torch.equal(cumulative[k], only_b[k]) for k in cumulative)


def test_ttt_command_writes_the_record(toy, train_cli, tmp_path):
    out = tmp_path / "rec.json"
    cmd = [
        *train_cli,
        "--stage",
        "ttt",
        "--method",
        "refine",
        "--family",
        "qa",
        "--base",
        str(toy["base"]),
        "--data",
        str(toy["eval"]),
        "--out",
        str(out),
        "--metrics",
        str(tmp_path / "m.jsonl"),
        "--cfg",
        json.dumps(TTT),
        "--arch",
        "deltanet",
        "--model-name",
        "post-toy_qa-160-nested_refine-s1",
        "--task",
        "toy_qa",
        "--length",
        "160",
        "--length-label",
        "160",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    record = json.loads(out.read_text())
    assert (record["ttt"], record["family"], record["n"], record["seed"]) == ("refine", "qa", 16, 1)
    assert record["stage"] == "post" and record["method"] == "nested_refine" and len(record["examples"]) == 16
    metrics = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and "reward_binary_mean" in metrics[0]
