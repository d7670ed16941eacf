"""fla's fused kernels (RMSNorm, gated RMSNorm, short conv, SwiGLU + down projection, linear cross-entropy) against
the torch path they replace, and whole tiny models with every switch on against all off.

The kernel checks need CUDA and fla (run them on the GPU machine: ``python -m pytest tests/unit/test_fla_fused.py``);
without either they are skipped. On CPU the switches must change nothing, which is checked here everywhere.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

import refine.models  # noqa: F401  (registers the models)
from refine.models.mlp import GatedMLP
from refine.models.tiny import tiny_config
from refine.ops.fla import fla_symbols
from refine.ops.linear_ce import ChunkedLinearCrossEntropy, linear_cross_entropy
from refine.ops.rmsnorm import fla_rms_norm, gated_rms_norm, rms_norm
from refine.ops.short_conv import fla_short_conv, short_conv

SWITCHES = {
    "deltanet": ("fuse_norm", "fuse_swiglu", "fuse_short_conv", "fuse_linear_cross_entropy"),
    "lact": ("fuse_norm", "last_layer_fuse_norm", "fuse_swiglu", "fuse_linear_cross_entropy"),
}
SMALL = {"deltanet": {}, "lact": {"lact_chunk_size": 16, "window_size": 24}}
VOCAB = 97

needs_fla = pytest.mark.skipif(
    not torch.cuda.is_available() or fla_symbols("fla.modules", "RMSNorm") is None,
    reason="fla's Triton kernels need CUDA and an importable fla",
)
# fp32 inputs: fla's kernels compute in fp32 like the torch path, only the summation order differs
TOL = {"rtol": 1e-4, "atol": 1e-4}


def grads_of(fn, *inputs):
    """``fn(*inputs)`` and the gradients of a fixed random projection of its output w.r.t. ``inputs``."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    gen = torch.Generator(device=outs[0].device).manual_seed(0)
    loss = sum((o * torch.randn(o.shape, generator=gen, device=o.device)).sum() for o in outs if o is not None)
    return outs, torch.autograd.grad(loss, inputs, allow_unused=True)


def assert_same(fused, plain, *inputs, tol=TOL):
    (out_f, grads_f), (out_p, grads_p) = grads_of(fused, *inputs), grads_of(plain, *inputs)
    for a, b in zip(out_f, out_p):
        if b is not None:
            torch.testing.assert_close(a, b, **tol)
    for a, b in zip(grads_f, grads_p):
        assert (a is None) == (b is None)
        if b is not None:
            torch.testing.assert_close(a, b, **tol)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=dtype).cuda()


@needs_fla
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16])
def test_rms_norm(weight_dtype):
    x, weight = randn(2, 33, 64), randn(64, dtype=weight_dtype)
    tol = TOL if weight_dtype == torch.float32 else {"rtol": 1.6e-2, "atol": 1e-2}  # bf16 weight gradient
    assert_same(lambda x, w: fla_rms_norm(x, None, w, 1e-6), lambda x, w: rms_norm(x, w, 1e-6), x, weight, tol=tol)


@needs_fla
def test_gated_rms_norm():
    x, gate, weight = randn(2, 33, 4, 32), randn(2, 33, 4, 32), randn(32)
    assert_same(
        lambda x, g, w: fla_rms_norm(x, g, w, 1e-6),
        lambda x, g, w: gated_rms_norm(x, g, w, 1e-6),
        x,
        gate,
        weight,
    )


@needs_fla
@pytest.mark.parametrize("with_state", [False, True])
def test_short_conv_with_states(with_state):
    """Output, final state (ours: the last W - 1 inputs) and gradients, through an initial state too."""
    x, weight, bias, state = randn(2, 37, 48), randn(48, 1, 4), randn(48), randn(2, 48, 3)

    def fused(x, w, b, s):
        return fla_short_conv(x, w, b, "silu", s if with_state else None, True)

    def plain(x, w, b, s):
        return short_conv(x, w, b, "silu", s if with_state else None, True)

    assert_same(fused, plain, x, weight, bias, state)


@needs_fla
def test_swiglu_linear():
    mlp = GatedMLP(64, 4, None, fused=True).cuda()
    unfused = GatedMLP(64, 4, None, fused=False).cuda()
    unfused.load_state_dict(mlp.state_dict())
    x = randn(2, 33, 64)
    assert_same(mlp, unfused, x)


@needs_fla
def test_linear_cross_entropy():
    hidden, weight = randn(70, 64), randn(VOCAB, 64)
    targets = torch.randint(0, VOCAB, (70,), generator=torch.Generator().manual_seed(0)).cuda()
    targets[[3, 50]] = -100
    keep = targets != -100
    assert_same(
        lambda h, w: linear_cross_entropy(h, w, targets),
        lambda h, w: ChunkedLinearCrossEntropy.apply(h[keep], w, targets[keep], 16),
        hidden,
        weight,
    )


def model_pair(arch: str, device: str):
    """The same tiny model with every kernel switch on and all off."""
    models = []
    for on in (True, False):
        torch.manual_seed(0)
        config = tiny_config(arch, VOCAB, **SMALL[arch], **dict.fromkeys(SWITCHES[arch], on))
        models.append(AutoModelForCausalLM.from_config(config).float().to(device).train())
    return models


def loss_and_grads(model, ids, mask):
    model.zero_grad(set_to_none=True)
    loss = model(ids, attention_mask=mask, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_fla)])
@pytest.mark.parametrize("arch", SWITCHES)
def test_model_with_all_switches(arch, device):
    """Every switch on equals all off: on CPU to fp32 round-off (the switches select CUDA kernels only; the linear
    CE is chunked on CPU too), on CUDA to fp32 kernel round-off; parameter names unchanged. 64 tokens keep the CUDA
    delta rule on fla's fp32 recurrent kernel (longer fp32 inputs run its chunk kernel in bf16, whose rounding
    turns the 1e-7 differences of the fused modules into 5e-3 relative gradient differences, seen on an H200)."""
    fused, plain = model_pair(arch, device)
    assert fused.state_dict().keys() == plain.state_dict().keys()
    ids = torch.randint(3, VOCAB, (2, 64), generator=torch.Generator().manual_seed(1)).to(device)
    mask = torch.ones_like(ids)
    mask[0, :9] = 0
    loss_f, grads_f = loss_and_grads(fused, ids, mask)
    loss_p, grads_p = loss_and_grads(plain, ids, mask)
    tol = {"rtol": 1e-5, "atol": 1e-6} if device == "cpu" else {"rtol": 1e-3, "atol": 1e-4}
    torch.testing.assert_close(loss_f, loss_p, **tol)
    assert grads_f.keys() == grads_p.keys()
    for name in grads_p:
        torch.testing.assert_close(grads_f[name], grads_p[name], **tol, msg=name)
    with torch.no_grad():  # cached decode through the fused conv / norms
        fused.eval(), plain.eval()
        out_f = fused(ids[:, :40], attention_mask=mask[:, :40], use_cache=True)
        out_p = plain(ids[:, :40], attention_mask=mask[:, :40], use_cache=True)
        step_f = fused(ids[:, 40:41], attention_mask=mask[:, :41], cache=out_f.cache).logits
        step_p = plain(ids[:, 40:41], attention_mask=mask[:, :41], cache=out_p.cache).logits
    torch.testing.assert_close(step_f, step_p, **tol)


@needs_fla
@pytest.mark.parametrize("arch", SWITCHES)
def test_model_under_bf16_autocast(arch):
    """The training configuration (fp32 weights, bf16 autocast): every switch on agrees with all off at bf16
    precision (loss within 2 %, each gradient within 10 % in norm)."""
    fused, plain = model_pair(arch, "cuda")
    ids = torch.randint(3, VOCAB, (2, 160), generator=torch.Generator().manual_seed(2)).cuda()
    mask = torch.ones_like(ids)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss_f, grads_f = loss_and_grads(fused, ids, mask)
        loss_p, grads_p = loss_and_grads(plain, ids, mask)
    torch.testing.assert_close(loss_f, loss_p, rtol=2e-2, atol=2e-2)
    for name, ref in grads_p.items():
        assert torch.isfinite(grads_f[name]).all(), name
        assert (grads_f[name] - ref).norm() <= 0.1 * ref.norm() + 1e-6, name
