"""LaCT's chunked fast-weight SwiGLU ("large-chunk test-time training").

Per head the fast weights define ``f(x) = w1 @ (silu(w0 @ x) * (w2 @ x))`` with ``w0, w2: [dh, din]`` and
``w1: [dout, dh]``. The sequence is cut into chunks of ``chunk_size`` tokens aligned to its first token; chunk
``i`` is *applied* (``o_t = f(q_t)``) with the weights left by chunks ``< i`` and then *updates* them by one
step on the negative dot-product loss ``-sum_t v_t . f(k_t)`` with per-token learning rates, optional
momentum, optional Muon (Newton-Schulz) orthogonalisation and a re-normalisation of every weight row to its
initial norm. A chunk updates only once a later token exists (the official loop, ``ttt_operation.py:123``), so
a state always keeps a non-empty *pending* chunk of 1..chunk_size tokens whose update is still to come.

Source: ReFINE ``verl/verl/models/lact/ttt_operation.py`` (= LaCT ``lact_llm/lact_model/ttt_operation.py`` at
f8430eb); line numbers below refer to that file. Layout: heads are folded into the batch,
``N = batch * heads``; ``q, k: [N, L, din]``, ``v: [N, L, dout]``, learning rates ``[N, L, 1]`` (or one per
column of the updated weight), momentum gates ``[N, L, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Newton-Schulz quintic coefficients of ``zeropower_via_newtonschulz5`` (ttt_operation.py:50-56).
_NS_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)


def l2_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x / (||x|| + eps)`` over the last dim, norm in fp32 (``l2_norm``, ttt_operation.py:20-26)."""
    return (x / (x.norm(dim=-1, keepdim=True) + eps)).to(x.dtype)


def newton_schulz5(g: torch.Tensor) -> torch.Tensor:
    """Approximate orthogonalisation of each ``[d1, d2]`` matrix of ``g: [N, d1, d2]`` (Muon), run in bf16.

    ``zeropower_via_newtonschulz5`` (ttt_operation.py:30-65): Frobenius-normalise, then five quintic
    iterations ``X <- a X + (b A + c A^2) X`` with ``A = X X^T`` on the wide orientation. Returns ``g``'s
    dtype.
    """
    x = g.bfloat16()
    tall = g.shape[1] > g.shape[2]
    if tall:
        x = x.transpose(1, 2)
    x = x / (x.norm(dim=(1, 2), keepdim=True) + 1e-7)
    for a, b, c in _NS_COEFFS:
        gram = x @ x.transpose(1, 2)
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.transpose(1, 2)
    return x.to(g.dtype)


def swiglu_apply(weights: Weights, x: torch.Tensor) -> torch.Tensor:
    """``f(x) = w1 (silu(w0 x) * (w2 x))``, ``[N, L, din] -> [N, L, dout]`` (ttt_operation.py:140-143)."""
    w0, w1, w2 = weights
    return (F.silu(x @ w0.transpose(1, 2)) * (x @ w2.transpose(1, 2))) @ w1.transpose(1, 2)


def dot_product_update(
    weights: Weights,
    k: torch.Tensor,
    v: torch.Tensor,
    lr0: torch.Tensor,
    lr1: torch.Tensor,
    lr2: torch.Tensor,
) -> Weights:
    """One chunk's lr-weighted negative gradients of ``-sum_t v_t . f(k_t)`` (hand-written backprop).

    ``dw1 = sum_t v_t (lr1_t * h_t)^T``, ``dw0 = sum_t g0_t (lr0_t * k_t)^T``,
    ``dw2 = sum_t g2_t (lr2_t * k_t)^T`` with ``h = silu(w0 k) * (w2 k)``, ``d = w1^T v``,
    ``g2 = d * silu(w0 k)``, ``g0 = d * (w2 k) * silu'(w0 k)``
    (ttt_operation.py:146-169; ``silu_backprop`` :5-16).
    """
    w0, w1, w2 = weights
    gate = k @ w0.transpose(1, 2)  # [N, L, dh], before the activation
    up = k @ w2.transpose(1, 2)
    sig = torch.sigmoid(gate)
    silu_gate = gate * sig
    d_hidden = v @ w1  # [N, L, dh]
    d_gate = d_hidden * up * sig * (1 + gate * (1 - sig))
    dw1 = v.transpose(1, 2) @ (silu_gate * up * lr1).to(v.dtype)
    dw0 = d_gate.transpose(1, 2) @ (k * lr0).to(d_gate.dtype)
    dw2 = (d_hidden * silu_gate).transpose(1, 2) @ (k * lr2).to(d_gate.dtype)
    return dw0, dw1, dw2


def renormalize(w: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """Rescale each row of ``w`` to the target ``norm`` (ttt_operation.py:200-202)."""
    return w / (w.norm(dim=2, keepdim=True) + 1e-5) * norm


@dataclass
class FastWeightState:
    """Where a sequence stands after some tokens: enough to continue it exactly.

    Attributes:
        weights: ``(w0, w1, w2)`` applied to the next queries.
        norms: row norms of the initial weights, the targets of every re-normalisation
            (ttt_operation.py:107-109).
        main: pre-norm variant only: the un-normalised accumulators ``w_main``
            (ttt_operation.py:261, :347-354).
        momentum: the last update ``(dw0, dw1, dw2)`` (momentum buffers, ttt_operation.py:171-180), or None.
        pending: the current chunk's ``(k, v, lr0, lr1, lr2, momentum_gate)`` (gate None without momentum);
            None before the first token.
    """

    weights: Weights
    norms: Weights
    main: Weights | None
    momentum: Weights | None
    pending: tuple[torch.Tensor | None, ...] | None = None

    @property
    def pending_len(self) -> int:
        return 0 if self.pending is None else self.pending[0].shape[1]


def init_state(
    w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, *, prenorm: bool = False, use_momentum: bool = False
) -> FastWeightState:
    """The state before the first token, from initial weights ``[N, ...]``."""
    weights = (w0, w1, w2)
    return FastWeightState(
        weights=weights,
        norms=tuple(w.norm(dim=2, keepdim=True) for w in weights),
        main=weights if prenorm else None,
        momentum=tuple(torch.zeros_like(w) for w in weights) if use_momentum else None,
    )


def _update(state: FastWeightState, chunk: tuple[torch.Tensor | None, ...], use_muon: bool) -> FastWeightState:
    """One chunk's update: gradients, momentum, Muon, step, re-normalisation (ttt_operation.py:146-202)."""
    k, v, lr0, lr1, lr2, gate = chunk
    grads = dot_product_update(state.weights, k, v, lr0, lr1, lr2)
    momentum = None
    if state.momentum is not None:
        m = gate.mean(dim=1, keepdim=True)
        grads = tuple(g + buf * m for g, buf in zip(grads, state.momentum))
        momentum = grads
    if use_muon:
        grads = tuple(newton_schulz5(g) for g in grads)
    base = state.weights if state.main is None else state.main
    stepped = tuple(w + g for w, g in zip(base, grads))
    weights = tuple(renormalize(w, n) for w, n in zip(stepped, state.norms))
    main = None if state.main is None else stepped
    return replace(state, weights=weights, main=main, momentum=momentum)


def lact_swiglu_continue(
    state: FastWeightState,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lr0: torch.Tensor,
    lr1: torch.Tensor,
    lr2: torch.Tensor,
    momentum: torch.Tensor | None = None,
    *,
    chunk_size: int,
    use_muon: bool = False,
) -> tuple[torch.Tensor, FastWeightState]:
    """Continue a sequence from ``state`` with ``L`` new tokens; returns ``(o [N, L, dout], new state)``.

    The new tokens join the pending chunk; chunk boundaries stay aligned to the sequence's first token, so
    running a sequence in segments gives the same outputs (and gradients) as running it at once.
    """
    seq = (k, v, lr0, lr1, lr2, momentum)
    if state.pending is not None:
        seq = tuple(None if x is None else torch.cat([p, x], dim=1) for p, x in zip(state.pending, seq))
    offset, total = state.pending_len, state.pending_len + q.shape[1]
    outputs = []
    start = 0
    while True:
        end = min(start + chunk_size, total)
        if end > offset:  # apply the current weights to the new queries of this chunk
            outputs.append(swiglu_apply(state.weights, q[:, max(start, offset) - offset : end - offset]))
        if end == total:
            break
        state = _update(state, tuple(None if x is None else x[:, start:end] for x in seq), use_muon)
        start = end
    state = replace(state, pending=tuple(None if x is None else x[:, start:] for x in seq))
    return torch.cat(outputs, dim=1), state


def lact_swiglu(
    w0: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lr0: torch.Tensor,
    lr1: torch.Tensor,
    lr2: torch.Tensor,
    momentum: torch.Tensor | None = None,
    *,
    chunk_size: int = 2048,
    use_muon: bool = False,
    prenorm: bool = False,
) -> torch.Tensor:
    """Whole-sequence chunked LaCT SwiGLU: ``block_causal_lact_swiglu`` (ttt_operation.py:70-216), or with
    ``prenorm`` ``prenorm_block_causal_lact_swiglu`` (:220-368). Returns ``o: [N, L, dout]``."""
    state = init_state(w0, w1, w2, prenorm=prenorm, use_momentum=momentum is not None)
    out, _ = lact_swiglu_continue(state, q, k, v, lr0, lr1, lr2, momentum, chunk_size=chunk_size, use_muon=use_muon)
    return out


def lact_swiglu_reference(
    w0: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lr0: torch.Tensor,
    lr1: torch.Tensor,
    lr2: torch.Tensor,
    momentum: torch.Tensor | None = None,
    *,
    chunk_size: int = 2048,
    use_muon: bool = False,
    prenorm: bool = False,
) -> torch.Tensor:
    """Token-by-token definition with autograd gradients (slow; tests only); arguments of :func:`lact_swiglu`.

    Token ``t`` is answered by the weights after all chunks that end at or before ``t``. A chunk's update is
    ``sum_t lr_t * grad_w (v_t . f_w(k_t))`` (lr scaling the columns), taken with ``torch.func.grad``.
    """
    norms = [w.norm(dim=2, keepdim=True) for w in (w0, w1, w2)]
    weights = main = [w0, w1, w2]
    buffers = [torch.zeros_like(w) for w in weights]
    lrs = (lr0, lr1, lr2)

    def score(ws, kt, vt):  # v_t . f(k_t), summed over the rows (rows never interact)
        return (swiglu_apply(ws, kt[:, None]) * vt[:, None]).sum()

    outputs = []
    for t in range(q.shape[1]):
        outputs.append(swiglu_apply(weights, q[:, t : t + 1]))
        if (t + 1) % chunk_size or t + 1 == q.shape[1]:
            continue
        grads = [torch.zeros_like(w) for w in weights]
        for s in range(t + 1 - chunk_size, t + 1):
            token_grads = torch.func.grad(score)(tuple(weights), k[:, s], v[:, s])
            for i, g in enumerate(token_grads):
                grads[i] = grads[i] + g * lrs[i][:, s, None, :]
        if momentum is not None:
            gate = momentum[:, t + 1 - chunk_size : t + 1].mean(dim=1, keepdim=True)
            grads = [g + b * gate for g, b in zip(grads, buffers)]
            buffers = grads
        if use_muon:
            grads = [newton_schulz5(g) for g in grads]
        main = [w + g for w, g in zip(main if prenorm else weights, grads)]
        weights = [renormalize(w, n) for w, n in zip(main, norms)]
    return torch.cat(outputs, dim=1)
