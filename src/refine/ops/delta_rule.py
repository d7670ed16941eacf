"""The delta rule (DeltaNet's fast-weight update), layout ``[B, T, H, D]`` like fla.

Per head, with state ``S: [K, V]`` (fla/ops/delta_rule/naive.py:12-37, ``delta_rule_recurrence``)::

    u_t = beta_t * (v_t - S_{t-1}^T k_t)        S_t = S_{t-1} + k_t u_t^T        o_t = S_t^T (scale * q_t)

``scale`` defaults to ``K ** -0.5`` (fla/ops/delta_rule/chunk.py:324). With ``use_qk_l2norm`` q and k are first
l2-normalised as fla's ``use_qk_l2norm_in_kernel`` does (``x / sqrt(sum x^2 + 1e-6)``, fla/modules/norm/l2norm.py:80).
Computation is fp32; outputs come back in the input dtype, states are fp32 ``[B, H, K, V]``.

* :func:`delta_rule_recurrent` - the token loop (reference).
* :func:`delta_rule_chunked` - the chunkwise WY form (fla/ops/delta_rule/naive.py:40-70, ``delta_rule_chunkwise``),
  extended with an initial state and any length.
* :func:`delta_rule` - dispatch: fla's Triton kernels on CUDA when fla imports, else the torch ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from refine.ops.fla import fla_symbols

CHUNK_SIZE = 64
# fla runs its recurrent kernel for inputs up to 64 tokens and the chunked one above (fla/layers/delta_net.py:188).
RECURRENT_MAX_LEN = 64
# The torch forms cross over much earlier: a chunk costs about as much as 6 recurrent steps (fwd+bwd, CPU), so
# beyond decoding-sized inputs the chunked form is faster (64 tokens continuing a cache: 10x).
TORCH_RECURRENT_MAX_LEN = 4
L2_EPS = 1e-6


def l2_normalize(x: torch.Tensor, eps: float = L2_EPS) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + eps)`` over the last dim, in fp32 (fla/modules/norm/l2norm.py:80)."""
    x = x.float()
    return x * torch.rsqrt(x.square().sum(dim=-1, keepdim=True) + eps)


def _prepare(q, k, v, beta, scale, initial_state, use_qk_l2norm):
    """fp32 copies of the inputs (q/k optionally l2-normalised, q scaled) and the fp32 initial state."""
    batch, _, heads, dim_k = q.shape
    q, k = (l2_normalize(q), l2_normalize(k)) if use_qk_l2norm else (q.float(), k.float())
    q = q * (dim_k**-0.5 if scale is None else scale)
    if initial_state is None:
        state = q.new_zeros(batch, heads, dim_k, v.shape[-1])
    else:
        state = initial_state.float()
    return q, k, v.float(), beta.float(), state


def delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token delta rule. ``q, k: [B, T, H, K]``, ``v: [B, T, H, V]``, ``beta: [B, T, H]``,
    ``initial_state: [B, H, K, V]``; returns ``(o [B, T, H, V], final state or None)``."""
    dtype = v.dtype
    q, k, v, beta, state = _prepare(q, k, v, beta, scale, initial_state, use_qk_l2norm)
    outputs = []
    for t in range(q.shape[1]):
        k_t = k[:, t]
        u_t = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhk,bhkv->bhv", k_t, state))
        state = state + k_t[..., :, None] * u_t[..., None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    o = torch.stack(outputs, dim=1) if outputs else v.new_zeros(v.shape)
    return o.to(dtype), state if output_final_state else None


def delta_rule_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise (WY) delta rule, same contract as :func:`delta_rule_recurrent`.

    Inside a chunk of C tokens with entry state ``S0``: ``(I + L) U = diag(beta) (V - K S0)`` with
    ``L = strict_lower(diag(beta) K K^T)``, i.e. ``U = u - w S0`` for ``[w | u] = (I + L)^-1 diag(beta) [K | V]``
    (one triangular solve for all chunks); then ``O = Q S0 + tril(Q K^T) U`` and ``S = S0 + K^T U``.
    The tail is zero-padded to a whole chunk (``k = beta = 0`` leaves the state unchanged).
    """
    dtype, (batch, length, heads, dim_k), dim_v = v.dtype, q.shape, v.shape[-1]
    q, k, v, beta, state = _prepare(q, k, v, beta, scale, initial_state, use_qk_l2norm)
    pad = -length % chunk_size
    num_chunks = (length + pad) // chunk_size

    def to_chunks(x: torch.Tensor) -> torch.Tensor:  # [B, T, H, D] -> [B, H, N, C, D]
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        return x.view(batch, num_chunks, chunk_size, heads, -1).permute(0, 3, 1, 2, 4)

    q, k, v, beta = to_chunks(q), to_chunks(k), to_chunks(v), to_chunks(beta[..., None])
    k_beta = k * beta
    lower = (k_beta @ k.transpose(-1, -2)).tril(-1)
    wu = torch.linalg.solve_triangular(lower, torch.cat([k_beta, v * beta], dim=-1), upper=False, unitriangular=True)
    w, u = wu.split([dim_k, dim_v], dim=-1)
    qk = (q @ k.transpose(-1, -2)).tril()

    outputs = []
    for n in range(num_chunks):
        u_n = u[:, :, n] - w[:, :, n] @ state
        outputs.append(q[:, :, n] @ state + qk[:, :, n] @ u_n)
        state = state + k[:, :, n].transpose(-1, -2) @ u_n
    o = torch.stack(outputs, dim=2).permute(0, 2, 3, 1, 4).reshape(batch, length + pad, heads, dim_v)
    return o[:, :length].to(dtype), state if output_final_state else None


def _fla_kernels():
    """fla's ``(chunk_delta_rule, fused_recurrent_delta_rule)``, or None when fla/triton cannot be imported."""
    return fla_symbols("fla.ops.delta_rule", "chunk_delta_rule", "fused_recurrent_delta_rule")


def delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The delta rule through the fastest available kernel (same contract as :func:`delta_rule_recurrent`).

    On CUDA with fla importable, inputs of at most ``RECURRENT_MAX_LEN`` tokens run fla's
    ``fused_recurrent_delta_rule`` and longer ones its ``chunk_delta_rule``; fla's chunk kernel rejects fp32
    (fla/ops/delta_rule/chunk.py:303), so fp32 activations run it in bf16 and the output is cast back. Otherwise
    the torch forms run: recurrent up to ``TORCH_RECURRENT_MAX_LEN`` tokens, chunked above.
    """
    kernels = _fla_kernels() if q.is_cuda else None
    if kernels is None:
        op = delta_rule_recurrent if q.shape[1] <= TORCH_RECURRENT_MAX_LEN else delta_rule_chunked
        return op(q, k, v, beta, scale, initial_state, output_final_state, use_qk_l2norm)
    recurrent = q.shape[1] <= RECURRENT_MAX_LEN
    chunk_op, recurrent_op = kernels
    dtype = v.dtype
    if not recurrent and dtype == torch.float32:
        q, k, v, beta = (x.to(torch.bfloat16) for x in (q, k, v, beta))
    o, state = (recurrent_op if recurrent else chunk_op)(
        q=q,
        k=k,
        v=v,
        beta=beta,
        scale=scale,
        initial_state=initial_state,
        output_final_state=output_final_state,
        use_qk_l2norm_in_kernel=use_qk_l2norm,
    )
    return o.to(dtype), state
