"""`refine_update` end to end on tiny DeltaNet: metrics, mini-batching, loss weighting, engine agreement."""

import pytest
import torch
from test_rl_engines import make_batch, make_model

from refine.models.base import ntp_loss
from refine.rl.config import RefineConfig
from refine.rl.step import refine_update


class RecordingSGD:
    """A plain optimizer step for tests: backward, SGD, zero_grad; records each loss."""

    def __init__(self, model, lr=1e-2):
        self.model, self.lr, self.losses = model, lr, []

    def __call__(self, loss):
        self.losses.append(loss.detach())
        loss.backward()
        with torch.no_grad():
            for p in self.model.parameters():
                if p.grad is not None:
                    p -= self.lr * p.grad
        self.model.zero_grad(set_to_none=True)
        return {"grad_norm": 1.0, "skipped": 0.0}


def run(cfg, model=None):
    model = model or make_model("deltanet")
    ids, mask = make_batch()
    opt = RecordingSGD(model)
    metrics = refine_update(model, ids, mask, cfg, opt, torch.Generator().manual_seed(3))
    return model, opt, metrics


def test_metrics_and_one_step_per_mini_batch():
    model, opt, metrics = run(RefineConfig(c=4, k=5, mini_batch_size=1))
    assert metrics["optimizer_steps"] == 2 and len(opt.losses) == 2
    for kind in ("cosine", "binary", "hybrid"):
        assert f"reward_{kind}_mean" in metrics and f"reward_{kind}_std" in metrics
    for name in (
        "advantage_mean",
        "advantage_std",
        "clip_frac",
        "selected_entropy_mean",
        "ntp_loss",
        "ppo_loss",
        "grad_norm",
        "skipped",
        "tokens_per_s",
    ):
        assert name in metrics, name
    assert abs(metrics["advantage_mean"]) < 1e-5  # standardised within each sequence's group
    assert not model.training  # the caller's mode is restored


def test_first_mini_batch_is_on_policy_and_loss_is_weighted():
    # one mini-batch: ratio == 1 everywhere, so PPO = -mean(A) = 0 and the loss is lambda_sft * NTP
    ids, mask = make_batch()
    model = make_model("deltanet")
    ntp = ntp_loss(model(ids, attention_mask=mask).logits, ids, mask).detach()
    _, opt, metrics = run(RefineConfig(c=4, k=5, lambda_sft=0.5, lambda_rl=0.4), model)
    assert metrics["ppo_kl"] == pytest.approx(0.0, abs=1e-6) and metrics["clip_frac"] == 0.0
    assert metrics["ntp_loss"] == pytest.approx(ntp.item(), rel=1e-6)
    assert opt.losses[0].item() == pytest.approx(0.5 * metrics["ntp_loss"] + 0.4 * metrics["ppo_loss"], rel=1e-6)


def test_both_engines_make_the_same_update():
    params = {}
    for rollout in ("recompute", "snapshot"):
        model, _, metrics = run(RefineConfig(c=4, k=5, mini_batch_size=1, rollout=rollout))
        params[rollout] = torch.cat([p.detach().flatten() for p in model.parameters()])
        params[rollout + "_reward"] = metrics["reward_cosine_mean"]
    torch.testing.assert_close(params["snapshot"], params["recompute"], atol=1e-5, rtol=1e-4)
    assert params["snapshot_reward"] == pytest.approx(params["recompute_reward"], abs=1e-5)


def test_rollouts_only_under_no_grad():
    """Under ``torch.no_grad`` (rollout metrics without training) no pass builds a graph, not even the first
    mini-batch's branches, which otherwise serve its update."""
    model = make_model("deltanet")
    ids, mask = make_batch()
    needs_grad = []

    def record(loss):
        needs_grad.append(loss.requires_grad)
        return {}

    with torch.no_grad():
        refine_update(model, ids, mask, RefineConfig(c=4, k=5), record, torch.Generator().manual_seed(3))
    assert needs_grad == [False]


def test_bench_refine_smoke():
    from refine.rl.bench import bench_refine, format_result

    result = bench_refine("deltanet", seq_len=128, batch_size=1, cfg=RefineConfig(c=2, k=3), repeats=1)
    assert result["refine_over_sft"] > 0 and result["recompute_over_snapshot"] > 0
    assert "REFINE/SFT" in format_result(result)
