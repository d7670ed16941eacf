"""The LM head fused with the NTP loss and the entropy, in token chunks: same loss, entropy and gradients as the
plain path (full fp32 logits), and no op ever produces more than a chunk of logits."""

import pytest
import torch
import torch.nn.functional as F
from test_checkpointing import ARCHS
from test_rl_engines import make_batch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM

from refine.models.tiny import tiny_config
from refine.ops import linear_ce
from refine.ops.linear_ce import ChunkedLinearCrossEntropy, entropy_from_logits, linear_cross_entropy, linear_entropy
from refine.rl.rollout import ENGINES, rollout_rows
from refine.rl.scan import scan

CHUNK = 16  # tokens per chunk in these tests (smaller than every sequence here)
VOCAB = 97  # no other dimension of the tiny models (batch ids stay below 64)


def model_of(arch: str, **overrides):
    """A tiny fp32 model (seeded) of vocabulary VOCAB in eval mode."""
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config(arch, VOCAB, **ARCHS[arch], **overrides)).float().eval()


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(linear_ce, "CHUNK_TOKENS", CHUNK)


class LargestLogits(TorchDispatchMode):
    """Records the most rows of any new op output (views allocate nothing) whose last dim is the vocabulary (a block
    of logits)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in () if func.is_view else out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-1] == self.vocab:
                self.rows = max(self.rows, t.numel() // self.vocab)
        return out


def test_chunked_linear_cross_entropy_matches_the_plain_loss_and_gradients():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 12, generator=gen, requires_grad=True)
    weight = torch.randn(40, 12, generator=gen, requires_grad=True)
    targets = torch.randint(0, 40, (50,), generator=gen)
    plain = 2.5 * F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    ref = torch.autograd.grad(plain, (hidden, weight))
    fused = 2.5 * ChunkedLinearCrossEntropy.apply(hidden, weight, targets, 7)
    got = torch.autograd.grad(fused, (hidden, weight))
    torch.testing.assert_close(fused, plain)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    frozen = ChunkedLinearCrossEntropy.apply(hidden, weight.detach(), targets, 7)  # no weight gradient needed
    torch.testing.assert_close(torch.autograd.grad(frozen, hidden)[0], ref[0] / 2.5)


def test_rows_without_a_target_are_not_computed():
    """Answer-only targets (a few rows of many): the plain loss and gradients from the logits of the target rows
    alone; no target at all gives 0 and zero gradients."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 12, generator=gen, requires_grad=True)
    weight = torch.randn(VOCAB, 12, generator=gen, requires_grad=True)
    targets = torch.full((40,), -100)
    targets[[5, 6, 30]] = torch.tensor([1, 50, 96])
    plain = F.cross_entropy(hidden @ weight.T, targets, ignore_index=-100, reduction="sum")
    with LargestLogits(VOCAB) as largest:
        loss = linear_cross_entropy(hidden, weight, targets, chunk_tokens=16)
        grads = torch.autograd.grad(loss, (hidden, weight))
    assert largest.rows == 3
    torch.testing.assert_close(loss, plain)
    for g, r in zip(grads, torch.autograd.grad(plain, (hidden, weight))):
        torch.testing.assert_close(g, r)
    none = linear_cross_entropy(hidden, weight, torch.full((40,), -100))
    assert none.item() == 0 and not torch.autograd.grad(none, hidden)[0].any()


def test_linear_entropy_matches_the_full_logits():
    gen = torch.Generator().manual_seed(1)
    hidden, weight = torch.randn(3, 21, 12, generator=gen), torch.randn(40, 12, generator=gen)
    torch.testing.assert_close(linear_entropy(hidden, weight, 5), entropy_from_logits(hidden @ weight.T))


def loss_and_grads(model, ids, mask):
    model.zero_grad(set_to_none=True)
    out = model(ids, attention_mask=mask, labels=ids)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_ntp_loss_in_the_model(arch, small_chunks):
    """Train mode with ``fuse_linear_cross_entropy``: the plain path's loss and gradients, no logits (only the last
    ``logits_to_keep``), and no op output larger than one chunk of logits; eval mode keeps the logits."""
    ids, mask = make_batch()
    plain = model_of(arch).train()
    fused = model_of(arch, fuse_linear_cross_entropy=True).train()
    with LargestLogits(VOCAB) as full:
        ref, ref_grads = loss_and_grads(plain, ids, mask)
    with LargestLogits(VOCAB) as largest:
        out, grads = loss_and_grads(fused, ids, mask)
    assert full.rows == ids.numel() and out.logits is None and 0 < largest.rows <= CHUNK
    torch.testing.assert_close(out.loss, ref.loss)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-5, atol=1e-6, msg=name)
    kept = fused(ids, attention_mask=mask, labels=ids, logits_to_keep=2)
    torch.testing.assert_close(kept.logits, ref.logits[:, -2:])
    fused.eval()
    torch.testing.assert_close(fused(ids, attention_mask=mask, labels=ids).logits, ref.logits)


@pytest.mark.parametrize("arch", ARCHS)
def test_scan_entropy_in_chunks(arch, small_chunks):
    model = model_of(arch)
    ids, mask = make_batch()
    with LargestLogits(VOCAB) as largest:
        found = scan(model, ids, mask)
    assert largest.rows <= CHUNK
    out = model(ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(found.entropy, entropy_from_logits(out.logits))
    torch.testing.assert_close(found.hidden, out.hidden_states[-1])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", [None, [1, 1]])
def test_engine_ntp_from_the_fused_loss(engine, split, small_chunks):
    """The engines' NTP term (whole sequences, or the snapshot trunk in segments with the terms across the cuts)
    from the fused loss equals :func:`~refine.rl.loss.ntp_term` of the full logits, gradients included."""
    from refine.rl.loss import ntp_term

    ids, mask = make_batch()
    seq_index, starts = rollout_rows(torch.tensor([[20, 50], [33, 71]]), 2)
    results = []
    for fuse in (False, True):
        model = model_of("deltanet", fuse_linear_cross_entropy=fuse).train()
        branches = ENGINES[engine].branch(model, ids, mask, seq_index, starts, ntp_split=split)
        ntp, _ = ENGINES[engine].forward(model, branches, ids[seq_index, 1:4], 1.0)
        ntp.backward()
        results.append((ntp.detach(), model.lm_head.weight.grad, model.model.embeddings.weight.grad))
        if not fuse:
            torch.testing.assert_close(ntp, ntp_term(model(ids, attention_mask=mask).logits, ids, mask, split))
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
