"""`strategy: fsdp` (FSDP2) on 2 CPU processes (gloo): the same update as 1 process (SFT, with gradient accumulation)
and as `ddp` on the same ranks (REFINE with validation, both rollout engines), and exact resume after a SIGKILL.

REFINE is compared with `ddp` rather than with 1 process because every rank draws its rollouts from its own stream.
Run as a script (`torchrun ... test_train_fsdp.py OUT BASE CORPUS VAL CFG`), this file is the worker that trains
the `RUNS` one after the other in one torchrun job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from refine.train import stages
from refine.train.config import MidConfig

LR = 1e-3  # Adam's first step moves each weight by about LR, so 1e-5 is 1 % of a step
# name -> (method, strategy, rollout engine, micro-batch size)
RUNS = {
    "sft_fsdp": ("sft", "fsdp", "snapshot", 1),  # 2 micro-batches per rank: gradient accumulation under FSDP
    "refine_ddp": ("refine", "ddp", "snapshot", 2),
    "refine_fsdp": ("refine", "fsdp", "snapshot", 2),
    "recompute_ddp": ("refine", "ddp", "recompute", 2),
    "recompute_fsdp": ("refine", "fsdp", "recompute", 2),
}


def run_config(cfg: dict, strategy: str, engine: str, micro: int) -> dict:
    return {
        **cfg,
        "optim": {"lr": LR},
        "strategy": strategy,
        "micro_batch_size": micro,
        "refine": {**cfg["refine"], "rollout": engine},
    }


def worker(out: Path, base: str, corpus: str, val: str, cfg: dict) -> None:
    for name, (method, strategy, engine, micro) in RUNS.items():
        stages.mid(
            MidConfig.from_dict(run_config(cfg, strategy, engine, micro)),
            method=method,
            base=base,
            data=corpus,
            val_data=val if method == "refine" else None,
            out=out / name,
            metrics=out / f"{name}.jsonl",
        )


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


def test_fsdp_matches_one_process_and_ddp(toy, dist_cfg, load_weights, tmp_path):
    paths = [str(toy[name]) for name in ("base", "corpus", "val")]
    job = launch(2, __file__, str(tmp_path), *paths, json.dumps(dist_cfg))
    stages.mid(  # meanwhile, 1 process taking the whole batch in one micro-batch
        MidConfig.from_dict(run_config(dist_cfg, "ddp", "snapshot", dist_cfg["batch_size"])),
        method="sft",
        base=toy["base"],
        data=toy["corpus"],
        out=tmp_path / "sft_one",
    )
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0, err[-3000:]

    w = {name: load_weights(tmp_path / name) for name in [*RUNS, "sft_one"]}
    base = load_weights(toy["base"])
    assert max_diff(w["sft_one"], base) > 0.5 * LR  # a step was taken
    assert max_diff(w["sft_fsdp"], w["sft_one"]) < 1e-5
    assert max_diff(w["recompute_fsdp"], w["recompute_ddp"]) < 1e-5
    # snapshot: FSDP cuts every rank's trunk at the starts of all ranks; extra cuts change only round-off
    assert max_diff(w["refine_fsdp"], w["refine_ddp"]) < 1e-5
    for engine in ("refine", "recompute"):
        ddp, fsdp = rows(tmp_path / f"{engine}_ddp.jsonl"), rows(tmp_path / f"{engine}_fsdp.jsonl")
        assert [(r["step"], r["split"]) for r in fsdp] == [(0, "val"), (1, "train"), (1, "val")]
        for a, b in zip(ddp, fsdp):
            for key in ("loss", "reward_cosine_mean", "grad_norm"):
                if key in a:
                    assert abs(a[key] - b[key]) < 1e-5 * max(1.0, abs(a[key])), (a["split"], key)


def test_fsdp_killed_run_resumes_bit_identical(toy, dist_cfg, train_cli, load_weights, tmp_path):
    cfg = {**run_config(dist_cfg, "fsdp", "snapshot", 2), "steps": 3, "save_every": 1}
    script = tmp_path / "train_cli.py"
    script.write_text(train_cli[2])

    def command(run: Path) -> list[str]:
        return [
            str(script),
            "train",
            "--stage",
            "mid",
            "--method",
            "refine",
            "--base",
            str(toy["base"]),
            "--data",
            str(toy["corpus"]),
            "--out",
            str(run / "out"),
            "--metrics",
            str(run / "m.jsonl"),
            "--state",
            str(run / "state"),
            "--seed",
            "3",
            "--cfg",
            json.dumps(cfg),
        ]

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
    assert resumed.returncode == 0, err[-3000:]
    assert f"resumed from {killed / 'state' / f'step-{saved_at}'} at step {saved_at}" in err
    _, err = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, err[-3000:]

    def losses(run: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in rows(run / "m.jsonl")]

    assert losses(killed) == losses(whole) and [s for s, _ in losses(whole)] == [1, 2, 3]
    a, b = load_weights(whole / "out"), load_weights(killed / "out")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


if __name__ == "__main__":
    out_dir, base_dir, corpus_path, val_path = sys.argv[1:5]
    worker(Path(out_dir), base_dir, corpus_path, val_path, json.loads(sys.argv[5]))
