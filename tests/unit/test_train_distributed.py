"""torchrun: 2 CPU processes (gloo) take the same step as 1 process on the same global batch."""

from __future__ import annotations

import torch

from refine.train import stages
from refine.train.config import MidConfig


def test_two_ranks_match_one_process(toy, dist_cfg, torchrun_mid, load_weights, tmp_path):
    stages.mid(
        MidConfig.from_dict(dist_cfg),
        method="sft",
        base=toy["base"],
        data=toy["corpus"],
        out=tmp_path / "one",
    )
    one, two = load_weights(tmp_path / "one"), torchrun_mid(tmp_path / "two", "sft", 2)
    assert one.keys() == two.keys()
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-6
    base = load_weights(toy["base"])
    assert any(not torch.equal(one[k], base[k]) for k in one)  # a step was taken
