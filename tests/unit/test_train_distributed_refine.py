"""torchrun: REFINE mid-training with validation on 2 CPU processes, batch and mini-batch split over ranks."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_common import build_toy, torchrun


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("toy"))


def test_refine_runs_on_two_ranks_with_validation(toy, tmp_path):
    out = torchrun(toy, tmp_path / "refine", "refine", 2, "--val-data", str(toy["val"]))
    assert all(torch.isfinite(v).all() for v in out.values())
    rows = [json.loads(line) for line in (tmp_path / "refine" / "m.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(0, "val"), (1, "train"), (1, "val")]
    assert rows[1]["tokens"] == 4 * 64 and rows[1]["optimizer_steps"] == 2 and "reward_cosine_mean" in rows[2]
