"""`strategy: fsdp` (FSDP2) on 2 CPU processes (gloo): the same update as 1 process (SFT, with gradient accumulation)
and as `ddp` on the same ranks (mid-training REFINE with validation, both rollout engines, activation checkpointing
on and off; nested post-training; test-time training with per-batch reset), and exact resume after a SIGKILL.

REFINE is compared with `ddp` rather than with 1 process because every rank draws its rollouts from its own stream.
Run as a script (`torchrun ... test_train_fsdp.py OUT TOY`), this file is the worker that trains the `RUNS`
and the post-training and TTT runs of both strategies one after the other in one torchrun job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from refine.train import stages
from refine.train.config import MidConfig, PostConfig, TTTConfig
from refine.train.distributed import is_sharded

LR = 1e-3  # Adam's first step moves each weight by about LR, so 1e-5 is 1 % of a step
# Adam's first step is LR * g / (|g| + eps): with the default eps 1e-8, a gradient of a few 1e-9 makes the step
# hang on the gradient's round-off (the sum of gradients differs in order between the strategies); eps 1e-6
# keeps round-off of ~1e-9 under 1e-3 of a step.
OPTIM = {"lr": LR, "eps": 1e-6}
MID = {
    "batch_size": 4,
    "max_length": 64,
    "steps": 1,
    "threads": 1,
    "optim": OPTIM,
    "refine": {"mini_batch_size": 2},
    "val_every": 1,
    "val_batch_size": 4,
}
FSDP, RECOMPUTE = {"strategy": "fsdp"}, {"refine": {"mini_batch_size": 2, "rollout": "recompute"}}
# name -> (method, overrides of MID)
RUNS = {
    "sft_fsdp": ("sft", {**FSDP, "micro_batch_size": 1}),  # 2 micro-batches per rank: accumulation under FSDP
    "refine_ddp": ("refine", {}),
    "refine_fsdp": ("refine", FSDP),
    "refine_fsdp_checkpointing": ("refine", {**FSDP, "gradient_checkpointing": True}),
    "recompute_ddp": ("refine", RECOMPUTE),
    "recompute_fsdp": ("refine", {**FSDP, **RECOMPUTE}),
}


POST = {"batch_size": 4, "max_length": 96, "max_answer_length": 4, "threads": 1, "optim": OPTIM}
TTT = {"threads": 1, "optim": OPTIM, "reset": "per_batch", "generation": {"max_prompt_length": 160}}


def worker(out: Path, toy: Path) -> None:
    for name, (method, overrides) in RUNS.items():
        trainer = stages.mid(
            MidConfig.from_dict({**MID, **overrides}),
            method=method,
            base=toy / "base",
            data=toy / "corpus.parquet",
            val_data=toy / "val.parquet" if method == "refine" else None,
            out=out / name,
            metrics=out / f"{name}.jsonl",
        )
        assert is_sharded(trainer.model) == ("strategy" in overrides)
    for strategy in ("ddp", "fsdp"):
        trainer = stages.post(
            PostConfig.from_dict({**POST, "strategy": strategy, "steps": 1, "refine": {"mini_batch_size": 2}}),
            method="nested_refine",
            base=toy / "base",
            data=toy / "qa.parquet",
            out=out / f"post_{strategy}",
            metrics=out / f"post_{strategy}.jsonl",
        )
        assert is_sharded(trainer.model) == (strategy == "fsdp")
        record = stages.ttt(
            TTTConfig.from_dict({**TTT, "strategy": strategy}),
            method="refine",
            base=toy / "base",
            data=toy / "eval.parquet",
            family="qa",
            metrics=out / f"ttt_{strategy}.jsonl",
        )
        (out / f"ttt_{strategy}.json").write_text(json.dumps([e["prediction"] for e in record["examples"]]))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def launch(nproc: int, *args: str, **popen) -> subprocess.Popen:
    """This file as the torchrun worker, or (with a `train` command line in `args`) the `refine train` CLI."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def failure(err: str) -> str:
    """A failed torchrun's stderr, shortened: the first error lines of its ranks (a rank aborting in C++, e.g. on a
    gloo exception, prints them long before torchrun's summary), then the tail."""
    first = [line for line in err.splitlines() if any(m in line for m in ("terminate called", "what():", "Error"))]
    return "\n".join(first[:20]) + "\n...\n" + err[-2000:]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc: the field after the command name's `)` is the state,
    then the parent's pid)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


@pytest.fixture(scope="module")
def job(toy, tmp_path_factory) -> Path:
    """The outputs of one torchrun job of `worker` on 2 ranks, and of the 1-process SFT run `sft_one`."""
    out = tmp_path_factory.mktemp("fsdp")
    running = launch(2, __file__, str(out), str(toy["base"].parent))
    stages.mid(  # meanwhile, 1 process taking the whole batch in one micro-batch
        MidConfig.from_dict({**MID, "micro_batch_size": MID["batch_size"]}),
        method="sft",
        base=toy["base"],
        data=toy["corpus"],
        out=out / "sft_one",
    )
    _, err = running.communicate(timeout=600)
    assert running.returncode == 0, failure(err)
    return out


def test_fsdp_mid_training_matches_one_process_and_ddp(job, toy, load_weights):
    w = {name: load_weights(job / name) for name in [*RUNS, "sft_one"]}
    base = load_weights(toy["base"])
    assert max_diff(w["sft_one"], base) > 0.5 * LR  # a step was taken
    assert max_diff(w["sft_fsdp"], w["sft_one"]) < 1e-5
    assert max_diff(w["recompute_fsdp"], w["recompute_ddp"]) < 1e-5
    # snapshot: FSDP cuts every rank's trunk at the starts of all ranks; extra cuts change only round-off
    assert max_diff(w["refine_fsdp"], w["refine_ddp"]) < 1e-5
    assert max_diff(w["refine_fsdp_checkpointing"], w["refine_ddp"]) < 1e-5
    for engine in ("refine", "recompute"):
        ddp, fsdp = rows(job / f"{engine}_ddp.jsonl"), rows(job / f"{engine}_fsdp.jsonl")
        assert [(r["step"], r["split"]) for r in fsdp] == [(0, "val"), (1, "train"), (1, "val")]
        for a, b in zip(ddp, fsdp):
            for key in ("loss", "reward_cosine_mean", "grad_norm"):
                if key in a:
                    assert abs(a[key] - b[key]) < 1e-5 * max(1.0, abs(a[key])), (a["split"], key)


def test_fsdp_post_training_and_ttt_match_ddp(job, load_weights):
    assert max_diff(load_weights(job / "post_fsdp"), load_weights(job / "post_ddp")) < 1e-5
    for stage in ("post", "ttt"):
        ddp, fsdp = rows(job / f"{stage}_ddp.jsonl"), rows(job / f"{stage}_fsdp.jsonl")
        assert len(ddp) == len(fsdp) > 0
        for a, b in zip(ddp, fsdp):
            assert abs(a["loss"] - b["loss"]) < 1e-5 and a["reward"] == pytest.approx(b["reward"], abs=1e-5)
    assert json.loads((job / "ttt_fsdp.json").read_text()) == json.loads((job / "ttt_ddp.json").read_text())


def test_fsdp_killed_run_resumes_bit_identical(mid_args, train_cli, load_weights, tmp_path):
    cfg = {**MID, **FSDP, "steps": 3, "save_every": 1}
    script = tmp_path / "train_cli.py"
    script.write_text(train_cli[2])

    def command(run: Path) -> list[str]:
        return [str(script), *mid_args(run, "refine", cfg, "--state", str(run / "state"), "--seed", "3")]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = launch(2, *command(whole))
    doomed = launch(2, *command(killed))
    while not (killed / "state" / "latest").exists():
        assert doomed.poll() is None, "the run ended before saving a state"
        time.sleep(0.02)
    for pid in [*children(doomed.pid), doomed.pid]:  # both ranks (torchrun starts each in its own session), launcher
        os.kill(pid, signal.SIGKILL)
    doomed.wait()
    assert not (killed / "out").exists()
    saved_at = int((killed / "state" / "latest").read_text().split("-")[1])
    assert saved_at < 3 and (killed / "state" / f"step-{saved_at}" / "shards").is_dir()

    resumed = launch(2, *command(killed))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, failure(err)
    assert f"resumed from {killed / 'state' / f'step-{saved_at}'} at step {saved_at}" in err
    _, err = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, failure(err)

    def losses(run: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in rows(run / "m.jsonl")]

    assert losses(killed) == losses(whole) and [s for s, _ in losses(whole)] == [1, 2, 3]
    a, b = load_weights(whole / "out"), load_weights(killed / "out")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
