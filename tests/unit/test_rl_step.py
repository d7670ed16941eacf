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


# ------------------------------------------------------------ switches for the official batch arithmetic (spec 4.9)
def test_step_layout_takes_one_block_of_every_slice_per_step():
    from refine.rl.step import step_layout

    assert step_layout(8, 4) == ([0, 1, 2, 3, 4, 5, 6, 7], [[4], [4]])  # contiguous blocks
    # two slices (GPUs) of 4: step 0 = the first 2 of each slice, step 1 = the next 2
    assert step_layout(8, 4, 2) == ([0, 1, 4, 5, 2, 3, 6, 7], [[2, 2], [2, 2]])
    assert step_layout(6, 4, 2) == ([0, 1, 3, 4, 2, 5], [[2, 2], [1, 1]])  # a short last block per slice
    assert step_layout(8, 4, 4)[0] == [0, 2, 4, 6, 1, 3, 5, 7]  # TTT: 8 prompts, mini 4 over 4 GPUs
    with pytest.raises(ValueError, match="do not split into 3 slices"):
        step_layout(8, 4, 3)


def make_four():
    """Four sequences of unequal real lengths (left pads 0, 11, 30, 5)."""
    ids = torch.randint(3, 64, (4, 96), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    for row, pads in enumerate((0, 11, 30, 5)):
        ids[row, :pads], mask[row, :pads] = 2, 0
    return ids, mask


def run_on(ids, mask, cfg):
    model = make_model("deltanet")
    opt = RecordingSGD(model)
    metrics = refine_update(model, ids, mask, cfg, opt, torch.Generator().manual_seed(3))
    return model, opt, metrics


@pytest.mark.parametrize("rollout", ["snapshot", "recompute"])
def test_slices_make_each_step_from_every_slice(rollout):
    """slices=2 is the contiguous-block update of the batch reordered by `step_layout`; the steps differ from the
    contiguous ones of the original order."""
    ids, mask = make_four()
    cfg = RefineConfig(c=2, k=3, mini_batch_size=2, rollout=rollout)
    order = [0, 2, 1, 3]
    sliced, opt_s, _ = run_on(ids, mask, RefineConfig(**{**cfg.__dict__, "slices": 2}))
    reordered, opt_r, _ = run_on(ids[order], mask[order], cfg)
    plain, opt_p, _ = run_on(ids, mask, cfg)
    assert [float(x) for x in opt_s.losses] == [float(x) for x in opt_r.losses]
    for a, b in zip(sliced.parameters(), reordered.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [float(x) for x in opt_s.losses] != [float(x) for x in opt_p.losses]


def test_ntp_term_micro_batch_means():
    from refine.rl.loss import ntp_term

    ids, mask = make_four()
    logits = torch.randn(4, 96, 64, generator=torch.Generator().manual_seed(0))
    per_row = [ntp_loss(logits[r : r + 1], ids[r : r + 1], mask[r : r + 1]) for r in range(4)]
    torch.testing.assert_close(ntp_term(logits, ids, mask), ntp_loss(logits, ids, mask))
    pairs = (ntp_loss(logits[:2], ids[:2], mask[:2]) + ntp_loss(logits[2:], ids[2:], mask[2:])) / 2
    torch.testing.assert_close(ntp_term(logits, ids, mask, [2, 2]), pairs)
    torch.testing.assert_close(ntp_term(logits, ids, mask, [1, 1, 1, 1]), torch.stack(per_row).mean())
    # unequal real lengths: the micro-batch mean weights short sequences more than the token mean
    assert abs(float(ntp_term(logits, ids, mask, [1, 1, 1, 1]) - ntp_loss(logits, ids, mask))) > 1e-4


@pytest.mark.parametrize("rollout", ["snapshot", "recompute"])
def test_ntp_micro_batch_switch(rollout):
    """ntp_micro_batch=1: the NTP term of a step is the mean of its sequences' own token means (cut within each
    slice's block); None: the token mean over the step. The first step's NTP is the pre-update model's."""
    ids, mask = make_four()
    model = make_model("deltanet")
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
    per_row = [ntp_loss(logits[r : r + 1], ids[r : r + 1], mask[r : r + 1]) for r in range(4)]
    token_mean = ntp_loss(logits, ids, mask)
    cfg = RefineConfig(c=2, k=3, rollout=rollout)
    _, opt, _ = run_on(ids, mask, cfg)
    assert opt.losses[0].item() == pytest.approx(cfg.lambda_sft * token_mean.item(), rel=1e-5)  # PPO = 0 on-policy
    _, opt, _ = run_on(ids, mask, RefineConfig(c=2, k=3, rollout=rollout, ntp_micro_batch=1))
    assert opt.losses[0].item() == pytest.approx(torch.stack(per_row).mean().item(), rel=1e-5)
    # two slices of two sequences, micro-batches of 2 within each: pairs (0, 1) and (2, 3), no cross-slice pair
    _, opt, _ = run_on(ids, mask, RefineConfig(c=2, k=3, rollout=rollout, slices=2, ntp_micro_batch=2))
    pairs = [ntp_loss(logits[a:b], ids[a:b], mask[a:b]) for a, b in ((0, 2), (2, 4))]
    assert opt.losses[0].item() == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-5)
