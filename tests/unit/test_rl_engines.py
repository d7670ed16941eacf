"""The two rollout engines agree (docs/design.md, "Design ideas" 2): same positions and tokens, old log-probs and
rewards within 1e-5, gradients of the total loss within 1e-4 relative, on tiny fp32 DeltaNet and LaCT."""

import pytest
import torch
from transformers import AutoModelForCausalLM

import refine.models  # noqa: F401  (registers the models)
from refine.models.base import ntp_loss
from refine.models.tiny import tiny_config
from refine.ops.linear_ce import entropy_from_logits
from refine.rl.config import RefineConfig
from refine.rl.grpo import grpo_advantages
from refine.rl.loss import ppo_clip_loss, refine_loss
from refine.rl.rewards import all_rewards, cosine_reward
from refine.rl.rollout import ENGINES, RecomputeEngine, collect_rollouts, token_logp
from refine.rl.scan import scan
from refine.rl.selection import select_positions

VOCAB, LENGTH, PADS = 64, 96, 11
CFG = RefineConfig(c=4, k=5)


def make_model(arch: str, **overrides):
    """A tiny fp32 model in eval mode; skips while the architecture is not available."""
    try:
        config = tiny_config(arch, VOCAB, **overrides)
    except ValueError as err:
        pytest.skip(str(err))
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).float().eval()


def make_batch():
    """Two sequences; the first left-padded with PADS pads (pad = EOS = 2)."""
    ids = torch.randint(3, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    ids[0, :PADS], mask[0, :PADS] = 2, 0
    return ids, mask


def rollouts_of_both_engines(model, ids, mask, cfg=CFG):
    found = scan(model, ids, mask)
    positions = select_positions(found.entropy, mask, cfg.c, cfg.k, cfg.sampling, cfg.margin, torch.Generator())
    return {
        name: collect_rollouts(engine, model, ids, mask, positions, found, cfg, torch.Generator().manual_seed(1))
        for name, engine in ENGINES.items()
    }


def total_loss_and_grads(model, engine, ids, mask, rollouts, advantages):
    model.zero_grad()
    branches = engine.branch(model, ids, mask, rollouts.seq_index, rollouts.positions)  # with gradient
    ntp, logp = engine.forward(model, branches, rollouts.tokens, 1.0)
    loss = refine_loss(ntp, ppo_clip_loss(logp, rollouts.old_logp, advantages)[0], CFG.lambda_sft, CFG.lambda_rl)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


SMALL_LACT = {"lact_chunk_size": 16, "window_size": 24}  # several update chunks and a full window within L


@pytest.mark.parametrize("arch, overrides", [("deltanet", {}), ("lact", {"pad_invariant": True, **SMALL_LACT})])
def test_engines_agree(arch, overrides):
    model = make_model(arch, **overrides)
    ids, mask = make_batch()
    ro = rollouts_of_both_engines(model, ids, mask)
    ref, snap = ro["recompute"], ro["snapshot"]
    assert torch.equal(ref.positions, snap.positions) and torch.equal(ref.tokens, snap.tokens)
    assert torch.equal(ref.gt_ids, snap.gt_ids)
    torch.testing.assert_close(snap.old_logp, ref.old_logp, atol=1e-5, rtol=0)
    rewards = {name: all_rewards(r.h_pred, r.h_gt, r.tokens, r.gt_ids) for name, r in ro.items()}
    for kind in ("cosine", "binary", "hybrid"):
        torch.testing.assert_close(rewards["snapshot"][kind], rewards["recompute"][kind], atol=1e-5, rtol=0)

    advantages = grpo_advantages(rewards["recompute"]["cosine"], ref.groups)
    # a second, off-policy old_logp makes ratios != 1 so the clipping paths carry gradient too
    ref.old_logp = ref.old_logp + 0.3 * torch.randn(ref.old_logp.shape, generator=torch.Generator().manual_seed(2))
    loss_ref, grads_ref = total_loss_and_grads(model, ENGINES["recompute"], ids, mask, ref, advantages)
    loss_snap, grads_snap = total_loss_and_grads(model, ENGINES["snapshot"], ids, mask, ref, advantages)
    torch.testing.assert_close(loss_snap, loss_ref, atol=1e-5, rtol=1e-5)
    assert grads_ref.keys() == grads_snap.keys() and grads_ref
    for name, g in grads_ref.items():
        rel = (grads_snap[name] - g).norm() / g.norm().clamp(min=1e-12)
        assert rel < 1e-4, f"{name}: relative gradient difference {rel:.2e}"


def test_lact_official_padding_changes_the_recompute_layout_only():
    """Official LaCT padding (spec 2, 4.4, 10.6): the recompute engine re-encodes each prefix behind L - r extra
    left pads, which the fast weights absorb (and which shift its update chunks and rotary positions), while the
    ground-truth states come from the original layout. So even the ground-truth continuation scores a cosine
    below 1 there, and the recompute engine's log-probs differ from the snapshot engine's (whose branches keep the
    original layout, that of h_gt). The pad-invariant switch removes the difference (test_engines_agree)."""
    ids, mask = make_batch()
    for pad_invariant, perfect in ((False, False), (True, True)):
        model = make_model("lact", pad_invariant=pad_invariant, **SMALL_LACT)
        found = scan(model, ids, mask)
        positions = torch.tensor([[40, 60], [30, 70]])
        ro = collect_rollouts(ENGINES["snapshot"], model, ids, mask, positions, found, CFG, torch.Generator())
        prefix, pmask = RecomputeEngine.prefixes(ids, mask, ro.seq_index, ro.positions, 2)
        logp, h_copy = RecomputeEngine.policy(model, prefix, pmask, ro.gt_ids, 1.0, hidden=True)
        copy_reward = cosine_reward(h_copy, ro.h_gt)
        assert torch.allclose(copy_reward, torch.ones_like(copy_reward), atol=1e-5) == perfect
        ref_logp = RecomputeEngine.policy(model, prefix, pmask, ro.tokens, 1.0)[0]
        assert torch.allclose(ref_logp, ro.old_logp, atol=1e-5) == perfect
        # the snapshot engine is self-consistent in either mode: its segmented trunk reproduces the
        # full-sequence NTP loss, and its update forward (all branches in one batch) its own sampling log-probs
        branches = ENGINES["snapshot"].branch(model, ids, mask, ro.seq_index, ro.positions)
        ntp, logp = ENGINES["snapshot"].forward(model, branches, ro.tokens, 1.0)
        torch.testing.assert_close(ntp, ntp_loss(model(ids, attention_mask=mask).logits, ids, mask))
        torch.testing.assert_close(logp, ro.old_logp, atol=1e-5, rtol=0)
        # and each branch continues its own row's original layout: a plain forward over tokens [0, r) + rollout
        for row, (seq, start) in enumerate(zip(ro.seq_index.tolist(), ro.positions.tolist())):
            own = torch.cat([ids[seq, :start], ro.tokens[row]])[None]
            own_mask = torch.cat([mask[seq, :start], torch.ones_like(ro.tokens[row])])[None]
            logits = model(own, attention_mask=own_mask).logits[:, start - 1 : -1]
            own_logp = token_logp(logits, ro.tokens[row : row + 1], 1.0)
            torch.testing.assert_close(own_logp, ro.old_logp[row : row + 1], atol=1e-5, rtol=0)


def test_prefixes_are_right_aligned_with_their_original_pads():
    ids = torch.tensor([[0, 0, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    prefix, pmask = RecomputeEngine.prefixes(ids, mask, torch.tensor([0, 0]), torch.tensor([4, 6]), pad=9)
    assert prefix.tolist() == [[9, 9, 0, 0, 5, 6], [0, 0, 5, 6, 7, 8]]
    assert pmask.tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]]


def test_entropy_from_logits():
    logits = torch.randn(3, 7)
    p = logits.softmax(-1)
    torch.testing.assert_close(entropy_from_logits(logits), -(p * p.log()).sum(-1))


@pytest.mark.parametrize("arch, overrides", [("deltanet", {}), ("lact", {"pad_invariant": True, **SMALL_LACT})])
def test_engines_agree_with_n_rollouts_and_shared_starts(arch, overrides):
    """n = 2 rollouts per position, two chunks of one sequence clamped to the same start, and a start shared
    across sequences: the snapshot engine's batching of branches must keep the row order."""
    model = make_model(arch, **overrides)
    ids, mask = make_batch()
    cfg = RefineConfig(c=2, k=3, n=2)
    positions = torch.tensor([[40, 40], [40, 75]])
    ro = {
        name: collect_rollouts(engine, model, ids, mask, positions, scan(model, ids, mask), cfg,
                               torch.Generator().manual_seed(5))
        for name, engine in ENGINES.items()
    }  # fmt: skip
    assert ro["snapshot"].positions.tolist() == [40, 40, 40, 40, 40, 40, 75, 75]
    assert torch.equal(ro["snapshot"].tokens, ro["recompute"].tokens)
    torch.testing.assert_close(ro["snapshot"].old_logp, ro["recompute"].old_logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ro["snapshot"].h_pred, ro["recompute"].h_pred, atol=1e-5, rtol=1e-5)
