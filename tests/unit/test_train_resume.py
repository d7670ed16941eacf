"""Exact resume: a `refine train` run killed after its first state save, then rerun, ends bit-identical to an
uninterrupted run (CPU, fixed seed), REFINE rollout sampling included."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import torch

from refine.train import stages
from refine.train.config import MidConfig

CFG = {
    "batch_size": 2,
    "max_length": 64,
    "steps": 3,
    "save_every": 1,
    "threads": 1,
    "optim": {"lr": 3e-3},
    "refine": {"mini_batch_size": 1},
}


def command(train_cli, paths, run):
    return [
        *train_cli,
        "--stage",
        "mid",
        "--method",
        "refine",
        "--base",
        str(paths["base"]),
        "--data",
        str(paths["corpus"]),
        "--out",
        str(run / "out"),
        "--metrics",
        str(run / "metrics.jsonl"),
        "--state",
        str(run / "state"),
        "--seed",
        "3",
        "--cfg",
        json.dumps(CFG),
    ]


def test_killed_run_resumes_bit_identical(toy, train_cli, load_weights, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    background = subprocess.Popen(command(train_cli, toy, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "state" / "latest").exists():
        assert background.poll() is None, "the run ended before saving a state"
        time.sleep(0.02)
    background.send_signal(signal.SIGKILL)
    background.wait()
    assert not (killed / "out").exists()
    saved_at = int((killed / "state" / "latest").read_text().split("-")[1])
    assert saved_at < 3

    resumed = subprocess.Popen(
        command(train_cli, toy, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stages.mid(
        MidConfig.from_dict(CFG),
        method="refine",
        base=toy["base"],
        data=toy["corpus"],
        out=whole / "out",
        metrics=whole / "metrics.jsonl",
        seed=3,
    )  # the uninterrupted run, meanwhile, in this process
    assert resumed.wait(timeout=300) == 0
    assert f"resumed from {killed / 'state' / f'step-{saved_at}'} at step {saved_at}" in resumed.stderr.read()

    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]

    assert losses(killed) == losses(whole) and [s for s, _ in losses(whole)] == [1, 2, 3]
    a, b = load_weights(whole / "out"), load_weights(killed / "out")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
