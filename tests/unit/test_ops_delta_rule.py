"""Delta rule: the chunked (WY) form equals the token loop in values, final state and gradients."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from refine.ops.delta_rule import delta_rule, delta_rule_chunked, delta_rule_recurrent, l2_normalize

TOL = {"atol": 1e-5, "rtol": 1e-5}


def make_inputs(batch=2, length=150, heads=3, dim_k=16, dim_v=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, length, heads, dim_k, generator=gen)
    k = torch.randn(batch, length, heads, dim_k, generator=gen)
    v = torch.randn(batch, length, heads, dim_v, generator=gen)
    beta = torch.rand(batch, length, heads, generator=gen)
    h0 = torch.randn(batch, heads, dim_k, dim_v, generator=gen)
    return [t.requires_grad_() for t in (q, k, v, beta, h0)]


def run_and_grad(op, inputs, **kwargs):
    q, k, v, beta, h0 = inputs
    o, state = op(q, k, v, beta, initial_state=h0, output_final_state=True, use_qk_l2norm=True, **kwargs)
    loss = (o * torch.linspace(-1, 1, o.shape[-1])).sum() + (state.square()).sum()
    return o, state, torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("length", [1, 64, 150])
@pytest.mark.parametrize("chunk_size", [16, 64])
def test_chunked_equals_recurrent_values_state_and_grads(length, chunk_size):
    inputs = make_inputs(length=length)
    o_ref, s_ref, g_ref = run_and_grad(delta_rule_recurrent, inputs)
    o, s, g = run_and_grad(delta_rule_chunked, inputs, chunk_size=chunk_size)
    torch.testing.assert_close(o, o_ref, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)
    for name, a, b in zip(["q", "k", "v", "beta", "initial_state"], g, g_ref):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, n=name: f"grad {n}: {m}")


def test_no_initial_state_and_custom_scale_without_l2norm():
    q, k, v, beta, _ = make_inputs(length=100)
    k = l2_normalize(k)  # keep the recurrence stable without the in-kernel norm
    o_ref, s_ref = delta_rule_recurrent(q, k, v, beta, scale=0.3, output_final_state=True)
    o, s = delta_rule_chunked(q, k, v, beta, scale=0.3, output_final_state=True)
    torch.testing.assert_close(o, o_ref, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)
    assert delta_rule_chunked(q, k, v, beta)[1] is None


def test_split_sequence_continues_through_the_state():
    q, k, v, beta, h0 = make_inputs(length=130)
    full, s_full = delta_rule_chunked(q, k, v, beta, initial_state=h0, output_final_state=True, use_qk_l2norm=True)
    o1, s1 = delta_rule_chunked(
        q[:, :70], k[:, :70], v[:, :70], beta[:, :70], initial_state=h0, output_final_state=True, use_qk_l2norm=True
    )
    o2, s2 = delta_rule_chunked(
        q[:, 70:], k[:, 70:], v[:, 70:], beta[:, 70:], initial_state=s1, output_final_state=True, use_qk_l2norm=True
    )
    torch.testing.assert_close(torch.cat([o1, o2], 1), full, **TOL)
    torch.testing.assert_close(s2, s_full, **TOL)


def test_output_dtype_follows_input_and_state_is_fp32():
    q, k, v, beta, h0 = (t.detach().to(torch.bfloat16) for t in make_inputs(length=80))
    o, s = delta_rule(q, k, v, beta, initial_state=h0, output_final_state=True, use_qk_l2norm=True)
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32


@pytest.mark.parametrize("length", [3, 40, 100])  # the recurrent form up to 4 tokens, chunked above
def test_dispatch_on_cpu_uses_the_torch_ops(length):
    inputs = [t.detach() for t in make_inputs(length=length)]
    o, s = delta_rule(*inputs[:4], initial_state=inputs[4], output_final_state=True, use_qk_l2norm=True)
    o_ref, s_ref = delta_rule_recurrent(
        *inputs[:4], initial_state=inputs[4], output_final_state=True, use_qk_l2norm=True
    )
    torch.testing.assert_close(o, o_ref, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)


def _load_fla_naive():
    """fla's naive.py loaded as a file (importing the fla package itself needs triton)."""
    spec = importlib.util.find_spec("fla")
    path = Path(spec.origin).parent / "ops" / "delta_rule" / "naive.py" if spec and spec.origin else None
    if path is None or not path.exists():
        pytest.skip("fla (fla/ops/delta_rule/naive.py) is not installed")
    module_spec = importlib.util.spec_from_file_location("fla_delta_rule_naive", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except ImportError as err:
        pytest.skip(f"fla's naive delta rule does not load: {err}")
    return module


def test_matches_fla_naive_recurrence():
    naive = _load_fla_naive()
    q, k, v, beta, h0 = (t.detach() for t in make_inputs(length=90))
    qn, kn = l2_normalize(q), l2_normalize(k)
    o_fla, s_fla = naive.delta_rule_recurrence(
        *(t.transpose(1, 2) for t in (qn, kn, v, beta)), initial_state=h0, output_final_state=True
    )
    o, s = delta_rule_chunked(q, k, v, beta, initial_state=h0, output_final_state=True, use_qk_l2norm=True)
    torch.testing.assert_close(o, o_fla.transpose(1, 2), **TOL)
    torch.testing.assert_close(s, s_fla, **TOL)


def test_importing_fla_kernels_keeps_our_auto_classes(monkeypatch):
    """fla's import registers its own "delta_net" classes; the lazy fla import must restore ours."""
    import sys
    import types

    from transformers import AutoConfig, PretrainedConfig

    from refine.models import DeltaNetConfig
    from refine.ops.fla import fla_symbols

    class ForeignConfig(PretrainedConfig):
        model_type = "delta_net"

    fake = types.ModuleType("fla.ops.delta_rule")
    fake.chunk_delta_rule, fake.fused_recurrent_delta_rule = object(), object()
    for name in ("fla", "fla.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "fla.ops.delta_rule", fake)
    AutoConfig.register("delta_net", ForeignConfig, exist_ok=True)  # what importing fla.models does
    names = ("chunk_delta_rule", "fused_recurrent_delta_rule")
    assert fla_symbols.__wrapped__("fla.ops.delta_rule", *names) == (
        fake.chunk_delta_rule,
        fake.fused_recurrent_delta_rule,
    )
    assert type(AutoConfig.for_model("delta_net")) is DeltaNetConfig


@pytest.mark.parametrize("preset", [None, "0"])
def test_fla_import_keeps_triton_autotune_results_unless_told_not_to(monkeypatch, preset):
    """Triton reads TRITON_CACHE_AUTOTUNING when fla defines its kernels: the gateway sets it (to 1) before importing,
    and leaves a value the user set alone."""
    from refine.ops.fla import TRITON_AUTOTUNE_CACHE, fla_symbols

    if preset is None:
        monkeypatch.delenv(TRITON_AUTOTUNE_CACHE, raising=False)
    else:
        monkeypatch.setenv(TRITON_AUTOTUNE_CACHE, preset)
    assert fla_symbols.__wrapped__("json", "dumps") is not None
    assert os.environ[TRITON_AUTOTUNE_CACHE] == (preset or "1")


def test_bench_timing_runs():
    from refine.commands.bench import time_delta_rule

    timing = time_delta_rule(length=96, batch=1, heads=2, head_dim=8, repeats=1)
    assert timing["recurrent_s"] > 0 and timing["chunked_s"] > 0 and timing["speedup"] > 0
