"""Sliding-window causal softmax attention with key padding, and rotary position embedding.

Query ``i`` attends to key ``j`` iff ``i - W < j <= i`` and key ``j`` is real: flash-attn's
``window_size=(W-1, 0), causal=True`` as LaCT calls it (ReFINE
``verl/verl/models/lact/layer_lact_swiglu.py:293-327``) and fla's ``parallel_attn(window_size=W)`` ("keys in
[i-W+1, i]", fla/ops/attn/parallel.py:806-808). Queries are the last ``Tq`` of the ``Tk`` key positions (a KV
window cache in front). Padded queries output 0, as flash-attn's varlen path leaves them (``pad_input``,
layer_lact_swiglu.py:310). Positions are columns of the padded tensor, which for left padding equals flash's
window over the unpadded tokens. Layout ``[B, T, H, D]`` throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from refine.ops.fla import fla_symbols

#: query rows per SDPA call on the torch path: a block scores ``block + W - 1`` keys per query where ``W`` are needed,
#: so small blocks waste less (tiny LaCT, W = 64, at 4K tokens: 16 ms per layer here against 47 at 1024 rows); 256
#: keeps a 256-token training document (the tiny default's pretraining) in one call, as before
QUERY_BLOCK = 256


def rotary_embedding(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate ``x: [B, T, H, D]`` by ``positions: [B, T]`` (or ``[T]``), fla's non-interleaved convention.

    fla ``RotaryEmbedding`` (fla/modules/rotary/ops.py:343-480, ``rotary_embedding_ref`` :133): angles
    ``pos * base^(-2i/D)`` in fp32, cos/sin cast to ``x``'s dtype, ``x * cos + rotate_half(x) * sin`` with
    ``rotate_half(x) = [-x2, x1]`` on the two halves.
    """
    dim = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim))
    angles = positions.to(torch.float32)[..., None] * inv_freq  # [(B,) T, D/2]
    cos = angles.cos().to(x.dtype).repeat(*(1,) * (angles.dim() - 1), 2).unsqueeze(-2)
    sin = angles.sin().to(x.dtype).repeat(*(1,) * (angles.dim() - 1), 2).unsqueeze(-2)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def keep_last(x: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The last ``n`` positions (dim 1) of ``x`` — what a window cache keeps."""
    return None if x is None else x[:, max(x.shape[1] - n, 0) :]


def _allowed(tq: int, tk: int, window_size: int, key_mask: torch.Tensor | None, device) -> torch.Tensor:
    """Boolean ``[B|1, tq, tk]``: band ``i - W < j <= i`` (queries = last ``tq`` keys) on real keys or i."""
    i = torch.arange(tk - tq, tk, device=device)[:, None]
    j = torch.arange(tk, device=device)[None, :]
    band = (j <= i) & (j > i - window_size)
    if key_mask is None:
        return band[None]
    return band & (key_mask.bool()[:, None, :] | (j == i))  # the diagonal keeps padded query rows finite


def window_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window_size: int,
    key_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Explicit softmax per query (slow; tests only). ``key_mask: [B, Tk]`` 1 = real."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    tq, tk = q.shape[1], k.shape[1]
    out = torch.zeros_like(q)
    for b in range(q.shape[0]):
        for t in range(tq):
            i = tk - tq + t
            if key_mask is not None and not key_mask[b, i]:
                continue
            keys = [j for j in range(max(i - window_size + 1, 0), i + 1) if key_mask is None or key_mask[b, j]]
            scores = torch.einsum("hd,jhd->hj", q[b, t], k[b, keys]) * scale
            out[b, t] = torch.einsum("hj,jhd->hd", scores.softmax(dim=-1), v[b, keys])
    return out


def _sdpa_window(q, k, v, window_size, key_mask, scale):
    """Torch path: SDPA per block of queries, each against its own key span."""
    tq, tk = q.shape[1], k.shape[1]
    outs = []
    for start in range(0, tq, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, tq)
        k_stop = tk - tq + stop
        k_start = max(k_stop - (stop - start) - window_size + 1, 0)
        mask = _allowed(
            stop - start,
            k_stop - k_start,
            window_size,
            None if key_mask is None else key_mask[:, k_start:k_stop],
            q.device,
        )
        o = F.scaled_dot_product_attention(
            q[:, start:stop].transpose(1, 2),
            k[:, k_start:k_stop].transpose(1, 2),
            v[:, k_start:k_stop].transpose(1, 2),
            attn_mask=mask[:, None],
            scale=scale,
        )
        outs.append(o.transpose(1, 2))
    return torch.cat(outs, dim=1)


def _fla_window(parallel_attn, q, k, v, window_size, key_mask, scale):
    """CUDA path: fla's Triton ``parallel_attn``; padded rows packed into ``cu_seqlens`` (left padding)."""
    if key_mask is None:
        return parallel_attn(q, k, v, scale=scale, window_size=window_size)
    real = key_mask.bool()
    lengths = real.sum(dim=1)
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0))
    packed = parallel_attn(
        q[real][None],
        k[real][None],
        v[real][None],
        scale=scale,
        window_size=window_size,
        cu_seqlens=cu_seqlens,
    )
    out = q.new_zeros(q.shape)
    out[real] = packed[0]
    return out


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window_size: int,
    key_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Sliding-window causal attention ``[B, Tq, H, D]`` of queries over ``k, v: [B, Tk >= Tq, H, D]``.

    ``key_mask: [B, Tk]`` (1 = real) or None.

    On CUDA in half precision with fla importable and no KV cache in front (``Tq == Tk``) this runs fla's
    ``parallel_attn``; otherwise ``F.scaled_dot_product_attention`` with a banded boolean mask, block by block
    over the queries.
    """
    if key_mask is not None and bool(key_mask.all()):
        key_mask = None
    fla_attn = _fla_parallel_attn() if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) else None
    if fla_attn is not None and q.shape[1] == k.shape[1]:
        out = _fla_window(fla_attn, q, k, v, window_size, key_mask, scale)
    else:
        out = _sdpa_window(q, k, v, window_size, key_mask, scale)
    if key_mask is not None:
        out = out * key_mask[:, -q.shape[1] :, None, None].to(out.dtype)
    return out


def _fla_parallel_attn():
    """fla's ``parallel_attn``, or None when fla/triton cannot be imported."""
    found = fla_symbols("fla.ops.attn", "parallel_attn")
    return None if found is None else found[0]
