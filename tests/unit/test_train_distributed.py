"""torchrun: 2 CPU processes (gloo) take the same step as 1 process on the same global batch."""

from __future__ import annotations

import pytest
import torch
from test_train_common import DIST_CFG, build_toy, torchrun, weights

from refine.train import stages
from refine.train.config import MidConfig


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("toy"))


def test_two_ranks_match_one_process(toy, tmp_path):
    stages.mid(
        MidConfig.from_dict(DIST_CFG),
        method="sft",
        base=toy["base"],
        data=toy["corpus"],
        out=tmp_path / "one",
    )
    one, two = weights(tmp_path / "one"), torchrun(toy, tmp_path / "two", "sft", 2)
    assert one.keys() == two.keys()
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-6
    base = weights(toy["base"])
    assert any(not torch.equal(one[k], base[k]) for k in one)  # a step was taken
