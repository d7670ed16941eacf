"""Divergence is loud: skipped steps are logged with their step and cause and counted apart from applied ones;
too many skips, or non-finite weights, fail the run before anything is saved or published."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from refine.train import stages
from refine.train.config import MidConfig, RunConfig
from refine.train.distributed import Dist
from refine.train.divergence import DivergenceError, DivergenceGuard, check_finite_weights
from refine.train.trainer import Trainer

NAN = float("nan")


def test_guard_fails_when_the_window_holds_too_many_skips(caplog):
    guard = DivergenceGuard(max_fraction=0.25, window=8)
    assert guard.record(1, applied=2, skipped=0, row={"loss": 1.0}) == {
        "loss": 1.0,
        "optimizer_steps": 2,
        "skipped_steps": 0,
    }
    with caplog.at_level(logging.WARNING):
        guard.record(2, applied=0, skipped=2, row={"loss": NAN, "grad_norm": NAN, "lr": 1e-3})
    assert "step 2: 2 of 2 optimizer steps skipped" in caplog.text and "grad_norm, loss" in caplog.text
    guard.record(3, applied=4, skipped=0, row={})
    guard.check(3)  # 2 of 8 skipped: at the limit, not over it
    guard.record(4, applied=0, skipped=1, row={"loss": NAN})
    with pytest.raises(DivergenceError, match="diverged at step 4: 3 of the last 8 optimizer steps were skipped"):
        guard.check(4)


def test_guard_forgets_skips_outside_the_window_and_judges_short_runs_at_the_end():
    guard = DivergenceGuard(max_fraction=0.5, window=4)
    guard.record(1, applied=0, skipped=2, row={})
    guard.record(2, applied=4, skipped=0, row={})  # the skips left the window
    guard.check(2)
    guard.finish(2)
    short = DivergenceGuard(max_fraction=0.25, window=20)
    short.record(1, applied=1, skipped=1, row={})  # 1 skip is far below 0.25 x 20 ...
    with pytest.raises(DivergenceError, match="1 of the last 2"):
        short.finish(1)  # ... but half of the run


def test_guard_history_survives_a_resume():
    guard = DivergenceGuard(max_fraction=0.25, window=4)
    guard.record(1, applied=2, skipped=1, row={})
    resumed = DivergenceGuard(max_fraction=0.25, window=4)
    resumed.load_state_dict(guard.state_dict())
    resumed.record(2, applied=0, skipped=1, row={})
    with pytest.raises(DivergenceError):
        resumed.check(2)


def test_diagnose_names_errors_about_non_finite_values_only():
    guard = DivergenceGuard(0.25, 20)
    with pytest.raises(DivergenceError, match="diverged at step 7: the update met non-finite values"):
        with guard.diagnose(7):
            torch.multinomial(torch.tensor([NAN, 1.0]), 1)
    with pytest.raises(RuntimeError, match="out of memory") as err, guard.diagnose(7):
        raise RuntimeError("CUDA out of memory")
    assert not isinstance(err.value, DivergenceError)


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = Trainer(torch.nn.Linear(3, 2), RunConfig(), Dist(), seed=0, total_steps=1, state=tmp_path / "state")
    trainer.save_state()
    assert (tmp_path / "state" / "latest").read_text() == "step-0"
    check_finite_weights(trainer.model, trainer.dist)
    with torch.no_grad():
        trainer.model.bias[1] = float("inf")
    trainer.step = 1
    with pytest.raises(DivergenceError, match="non-finite weights: bias"):
        trainer.save_state()
    assert (tmp_path / "state" / "latest").read_text() == "step-0"


@pytest.mark.parametrize("method", ["sft", "refine"])
def test_an_exploding_learning_rate_fails_and_publishes_nothing(method, toy, tmp_path):
    cfg = {"batch_size": 4, "max_length": 64, "steps": 4, "threads": 1, "optim": {"lr": 1e9}, "val_before_train": False}
    cfg["refine"] = {"mini_batch_size": 2}
    out, metrics = tmp_path / "out", tmp_path / "metrics.jsonl"
    with pytest.raises(DivergenceError, match="training diverged at step"):
        stages.mid(
            MidConfig.from_dict(cfg),
            method=method,
            base=toy["base"],
            data=toy["corpus"],
            out=out,
            metrics=metrics,
            state=tmp_path / "state",
        )
    assert not out.exists() and not metrics.exists()
    rows = [json.loads(line) for line in (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()]
    attempts = 1 if method == "sft" else 2  # optimizer steps per training step: 1, or one per mini-batch
    assert all(r["optimizer_steps"] + r["skipped_steps"] == attempts for r in rows)
    assert rows[0]["optimizer_steps"] >= 1 and sum(r["skipped_steps"] for r in rows) >= 1
    if method == "sft":  # the blown-up weights give non-finite gradients: those steps are counted as skipped
        assert [(r["optimizer_steps"], r["skipped_steps"]) for r in rows] == [(1, 0)] + [(0, 1)] * 3


def test_the_command_reports_divergence_in_one_line_and_writes_no_output(toy, tmp_path):
    cfg = {"batch_size": 4, "max_length": 64, "steps": 4, "threads": 1, "optim": {"lr": 1e9}, "val_before_train": False}
    out, metrics = tmp_path / "out", tmp_path / "metrics.jsonl"
    args = ["--stage", "mid", "--method", "sft", "--base", str(toy["base"]), "--data", str(toy["corpus"])]
    args += ["--out", str(out), "--metrics", str(metrics), "--state", str(tmp_path / "state"), "--cfg", json.dumps(cfg)]
    run = subprocess.run([sys.executable, "-m", "refine.cli", "train", *args], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "ERROR refine: training diverged at step 4: 3 of the last 4 optimizer steps were skipped" in run.stderr
    assert "WARNING refine.train.divergence: step 2: 1 of 1 optimizer steps skipped" in run.stderr
    assert not out.exists() and not metrics.exists()
