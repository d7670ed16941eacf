"""Short causal convolution and RMSNorm against their references."""

import pytest
import torch
import torch.nn.functional as F

from refine.ops.rmsnorm import RMSNorm, gated_rms_norm, rms_norm, rms_norm_reference
from refine.ops.short_conv import ShortConvolution, short_conv, short_conv_reference

TOL = {"atol": 1e-5, "rtol": 1e-5}


def conv_inputs(batch=2, length=11, dim=6, width=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, length, dim, generator=gen),
        torch.randn(dim, 1, width, generator=gen),
        torch.randn(dim, generator=gen),
        torch.randn(batch, dim, width - 1, generator=gen),
    )


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("use_state", [False, True])
def test_short_conv_matches_reference(activation, use_bias, use_state):
    x, w, b, state = conv_inputs()
    args = (x, w, b if use_bias else None, activation, state if use_state else None, True)
    y, new_state = short_conv(*args)
    y_ref, state_ref = short_conv_reference(*args)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(new_state, state_ref, **TOL)


def test_short_conv_is_causal_and_zero_padded():
    x, w, _, _ = conv_inputs()
    y, _ = short_conv(x, w)
    # fla/PyTorch formulation: a depthwise Conv1d with W-1 zeros of left padding, cropped to T outputs.
    expected = F.conv1d(x.transpose(1, 2), w, padding=w.shape[-1] - 1, groups=x.shape[-1])[..., : x.shape[1]]
    torch.testing.assert_close(y, expected.transpose(1, 2), **TOL)


@pytest.mark.parametrize("split", [1, 2, 7])
def test_short_conv_state_continues_the_sequence(split):
    x, w, b, _ = conv_inputs()
    full, full_state = short_conv(x, w, b, "silu", output_final_state=True)
    y1, state = short_conv(x[:, :split], w, b, "silu", output_final_state=True)
    y2, state = short_conv(x[:, split:], w, b, "silu", state=state, output_final_state=True)
    torch.testing.assert_close(torch.cat([y1, y2], 1), full, **TOL)
    torch.testing.assert_close(state, full_state, **TOL)
    assert state.shape == (x.shape[0], x.shape[2], w.shape[-1] - 1)


def test_short_convolution_module_layout_and_step_decoding():
    conv = ShortConvolution(6, 4, activation="silu")
    assert conv.weight.shape == (6, 1, 4) and conv.bias is None
    x = torch.randn(2, 9, 6)
    full, _ = conv(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        y, state = conv(x[:, t : t + 1], state, output_final_state=True)
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)
    with pytest.raises(ValueError):
        ShortConvolution(6, 4, activation="gelu")


def test_rms_norm_matches_reference_and_computes_in_fp32():
    x, w = torch.randn(3, 5, 16), torch.randn(16)
    torch.testing.assert_close(rms_norm(x, w, 1e-6), rms_norm_reference(x, w, 1e-6), **TOL)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    torch.testing.assert_close(rms_norm(x, w, 1e-6), expected, **TOL)
    x_bf16 = x.to(torch.bfloat16)
    y = rms_norm(x_bf16, w, 1e-6)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, rms_norm_reference(x_bf16.float(), w, 1e-6).to(torch.bfloat16), atol=0, rtol=0)


def test_gated_rms_norm_and_module():
    x, g, w = torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.randn(8)
    torch.testing.assert_close(gated_rms_norm(x, g, w, 1e-5), rms_norm_reference(x, w, 1e-5) * F.silu(g), **TOL)
    norm = RMSNorm(8, eps=1e-5, dtype=torch.float32)
    assert norm.weight.dtype == torch.float32 and torch.equal(norm.weight, torch.ones(8))
    torch.testing.assert_close(norm(x), rms_norm_reference(x, None, 1e-5), **TOL)
    torch.testing.assert_close(norm(x, g), rms_norm_reference(x, None, 1e-5) * F.silu(g), **TOL)
