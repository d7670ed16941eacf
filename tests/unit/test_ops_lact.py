"""LaCT kernels: chunked fast-weight SwiGLU vs its token-by-token definition; window attention; rotary."""

import math

import pytest
import torch

from refine.ops import window_attn
from refine.ops.lact_ttt import (
    init_state,
    l2_normalize,
    lact_swiglu,
    lact_swiglu_continue,
    lact_swiglu_reference,
    swiglu_apply,
)
from refine.ops.window_attn import rotary_embedding, window_attention, window_attention_reference

N, L, D, DH, CHUNK = 3, 29, 8, 12, 6


def _inputs(seed=0, lr_cols=(1, 1, 1), dh=DH):
    """Weights, q/k/v, per-token lrs and momentum gates shaped like LaCTLayer's (heads folded into N)."""
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *s: torch.randn(*s, generator=gen)
    weights = [
        randn(N, dh, D) / math.sqrt(D),
        randn(N, D, dh) / math.sqrt(dh),
        randn(N, dh, D) / math.sqrt(D),
    ]
    qkv = [l2_normalize(randn(N, L, D)), l2_normalize(randn(N, L, D)), randn(N, L, D)]
    lrs = [torch.rand(N, L, r, generator=gen) * 0.5 for r in lr_cols]
    momentum = torch.rand(N, L, 1, generator=gen)
    return [t.requires_grad_() for t in weights + qkv + lrs], momentum.requires_grad_()


def _grads(out, tensors):
    return torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1])).square().sum(), tensors)


@pytest.mark.parametrize("prenorm", [False, True])
@pytest.mark.parametrize("use_momentum", [False, True])
def test_fast_matches_reference_values_and_grads(prenorm, use_momentum):
    args, momentum = _inputs()
    tensors = args + ([momentum] if use_momentum else [])
    kw = {"chunk_size": CHUNK, "prenorm": prenorm}
    fast = lact_swiglu(*args, momentum if use_momentum else None, **kw)
    ref = lact_swiglu_reference(*args, momentum if use_momentum else None, **kw)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for g_fast, g_ref in zip(_grads(fast, tensors), _grads(ref, tensors)):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-5)


def test_per_column_learning_rates():
    args, momentum = _inputs(seed=1, lr_cols=(D, D, D), dh=D)
    fast = lact_swiglu(*args, momentum, chunk_size=CHUNK)
    torch.testing.assert_close(fast, lact_swiglu_reference(*args, momentum, chunk_size=CHUNK), rtol=1e-5, atol=1e-5)


def test_muon_matches_reference():
    """Muon runs Newton-Schulz in bf16 (as the official op), so gradients agree only to bf16 accuracy."""
    args, momentum = _inputs(seed=2)
    fast = lact_swiglu(*args, momentum, chunk_size=CHUNK, use_muon=True)
    ref = lact_swiglu_reference(*args, momentum, chunk_size=CHUNK, use_muon=True)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for g_fast, g_ref in zip(_grads(fast, args), _grads(ref, args)):
        assert (g_fast - g_ref).norm() <= 5e-2 * g_ref.norm()


def test_apply_then_update():
    """The first chunk sees the initial weights; the last chunk (even a full one) never updates anything."""
    args, momentum = _inputs()
    w, q = args[:3], args[3]
    out = lact_swiglu(*args, momentum, chunk_size=CHUNK)
    torch.testing.assert_close(out[:, :CHUNK], swiglu_apply(w, q[:, :CHUNK]))
    length = 2 * CHUNK  # a sequence of exactly two chunks: the second one's k/v/lr must not matter
    trimmed = [a[:, :length] if a.dim() == 3 and a.shape[1] == L else a for a in args]
    changed = [t.detach().clone() for t in trimmed]
    changed[4][:, CHUNK:] += 1.0
    changed[5][:, CHUNK:] -= 1.0
    torch.testing.assert_close(
        lact_swiglu(*trimmed, momentum[:, :length], chunk_size=CHUNK),
        lact_swiglu(*changed, momentum[:, :length], chunk_size=CHUNK),
    )


@pytest.mark.parametrize("prenorm", [False, True])
def test_continue_in_segments_equals_whole(prenorm):
    """Carrying the state (weights, momentum, pending partial chunk) over any cut points changes nothing."""
    args, momentum = _inputs(seed=3)
    w, seq = args[:3], args[3:] + [momentum]
    whole = lact_swiglu(*w, *seq, chunk_size=CHUNK, prenorm=prenorm)
    state = init_state(*w, prenorm=prenorm, use_momentum=True)
    outs = []
    for start, stop in [(0, 4), (4, 5), (5, 6), (6, 17), (17, 18), (18, L)]:
        out, state = lact_swiglu_continue(state, *(t[:, start:stop] for t in seq), chunk_size=CHUNK)
        outs.append(out)
    segmented = torch.cat(outs, dim=1)
    assert state.pending_len == L - (L - 1) // CHUNK * CHUNK
    torch.testing.assert_close(segmented, whole, rtol=1e-6, atol=1e-6)
    for g_seg, g_whole in zip(_grads(segmented, args), _grads(whole, args)):
        torch.testing.assert_close(g_seg, g_whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("query_block", [1024, 4])
@pytest.mark.parametrize("padded", [False, True])
def test_window_attention_matches_reference(monkeypatch, query_block, padded):
    monkeypatch.setattr(window_attn, "QUERY_BLOCK", query_block)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 19, 3, 4, generator=gen, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 19, dtype=torch.long)
    if padded:
        mask[0, :6] = 0
    mask = mask if padded else None
    out, ref = window_attention(q, k, v, 5, mask), window_attention_reference(q, k, v, 5, mask)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for g_out, g_ref in zip(torch.autograd.grad(out.sum(), (q, k, v)), torch.autograd.grad(ref.sum(), (q, k, v))):
        torch.testing.assert_close(g_out, g_ref, rtol=1e-5, atol=1e-6)
    if padded:
        assert out[0, :6].abs().max() == 0  # padded queries output 0 (flash-attn varlen + pad_input)
    # decoding: the last 3 queries against the cached keys give the same rows
    torch.testing.assert_close(window_attention(q[:, -3:], k, v, 5, mask), ref[:, -3:], rtol=1e-5, atol=1e-6)


def test_window_semantics():
    """Query i sees exactly keys i-W < j <= i: a one-hot value at key j reaches only those queries."""
    t, w = 10, 3
    q, k = torch.zeros(1, t, 1, 2), torch.zeros(1, t, 1, 2)
    v = torch.eye(t)[None, :, None, :]  # value j = e_j
    weights = window_attention(q, k, v, w)[0, :, 0]  # [i, j] = attention weight of key j for query i
    i, j = torch.arange(t)[:, None], torch.arange(t)[None]
    allowed = (j <= i) & (j > i - w)
    torch.testing.assert_close(weights, allowed.float() / allowed.sum(1, keepdim=True))


def test_rotary_convention_and_offsets():
    """fla's non-interleaved rotary: pair (c, c + D/2) turned by pos * base^(-2c/D); offsets shift."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 8, generator=gen)
    positions = torch.tensor([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]])
    out = rotary_embedding(x, positions, base=100.0)
    c = torch.arange(4)
    angle = positions[..., None, None].float() * 100.0 ** (-2 * c / 8)
    lo, hi = x[..., :4], x[..., 4:]
    expected = torch.cat([lo * angle.cos() - hi * angle.sin(), hi * angle.cos() + lo * angle.sin()], dim=-1)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(rotary_embedding(x[1:], torch.arange(7, 12), 100.0), out[1:])
