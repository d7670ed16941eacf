"""Activation checkpointing per block (transformers' switch) gives the same values and gradients as without, also
through the recurrent cache (segmented trunk, forked branches, cached decode) and a whole ``refine_update``, and it
cuts the memory held for the backward."""

import warnings

import pytest
import torch
from test_rl_engines import SMALL_LACT, make_batch, make_model
from test_rl_step import RecordingSGD

from refine.rl.config import RefineConfig
from refine.rl.step import refine_update

ARCHS = {"deltanet": {}, "lact": SMALL_LACT}


def set_checkpointing(model, on: bool) -> None:
    """The transformers switch (its deprecation warning on transformers >= 5.25 is not under test here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model.gradient_checkpointing_enable() if on else model.gradient_checkpointing_disable()


def count_checkpoint_calls(model) -> list[int]:
    """Wrap every block's checkpoint function to count its calls (after ``set_checkpointing(model, True)``)."""
    calls = [0]
    for layer in model.model.layers:

        def counted(fn, *args, inner=layer._gradient_checkpointing_func):
            calls[0] += 1
            return inner(fn, *args)

        layer._gradient_checkpointing_func = counted
    return calls


def grads(model, loss_fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_with_and_without(model, loss_fn) -> None:
    """Loss and gradients of ``loss_fn(model)`` (train mode) with checkpointing off and on agree to fp32 round-off,
    and the checkpointed run really went through the checkpoint function."""
    model.train()
    set_checkpointing(model, False)
    assert not model.is_gradient_checkpointing
    ref_loss, ref = grads(model, loss_fn)
    set_checkpointing(model, True)
    assert model.is_gradient_checkpointing
    calls = count_checkpoint_calls(model)
    loss, got = grads(model, loss_fn)
    assert calls[0] > 0
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    assert got.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_plain_forward_backward(arch):
    model = make_model(arch, **ARCHS[arch])
    ids, mask = make_batch()
    assert_same_with_and_without(model, lambda m: m(ids, attention_mask=mask, labels=ids).loss)


@pytest.mark.parametrize("arch", ARCHS)
def test_segmented_trunk_forks_and_cached_decode(arch):
    """A trunk in three cached segments, forks of the cache after each of the first two, and three decode tokens
    on the concatenated forks: the cache writes happen outside the checkpointed call, so the recomputation in the
    backward neither rewrites nor double-counts the state."""
    model = make_model(arch, **ARCHS[arch])
    ids, mask = make_batch()
    bounds = [0, 30, 61, ids.shape[1]]

    def loss_fn(m):
        cache, forks, loss = None, [], 0.0
        for begin, end in zip(bounds, bounds[1:]):
            out = m(ids[:, begin:end], attention_mask=mask[:, :end], cache=cache, use_cache=True)
            loss = loss + out.logits.logsumexp(-1).mean()
            cache = out.cache
            if end < ids.shape[1]:
                forks.append(cache.fork(torch.tensor([1, 0, 1])))
        branches = type(cache).cat(forks)
        tokens = ids[[1, 0, 1, 1, 0, 1], -3:]
        out = m(tokens, cache=branches, use_cache=True)
        return loss + out.logits.log_softmax(-1).gather(-1, tokens[..., None]).mean()

    assert_same_with_and_without(model, loss_fn)


def test_inactive_in_eval_mode_and_without_gradient():
    model = make_model("deltanet")
    ids, mask = make_batch()
    set_checkpointing(model, True)
    calls = count_checkpoint_calls(model)
    model.eval()
    model(ids, attention_mask=mask).logits.sum().backward()
    model.train()
    with torch.no_grad():
        model(ids, attention_mask=mask)
    assert calls[0] == 0
    set_checkpointing(model, False)
    assert not model.is_gradient_checkpointing


@pytest.mark.parametrize("rollout", ["snapshot", "recompute"])
def test_refine_update_makes_the_same_update(rollout):
    cfg = RefineConfig(c=4, k=5, mini_batch_size=1, rollout=rollout)
    params, calls = {}, {}
    for on in (False, True):
        model = make_model("deltanet")
        set_checkpointing(model, on)
        counter = count_checkpoint_calls(model) if on else [0]
        ids, mask = make_batch()
        refine_update(model, ids, mask, cfg, RecordingSGD(model), torch.Generator().manual_seed(3))
        params[on] = torch.cat([p.detach().flatten() for p in model.parameters()])
        calls[on] = counter[0]
    assert calls[True] > 0
    torch.testing.assert_close(params[True], params[False], rtol=1e-5, atol=1e-6)


def held_for_backward(model, ids) -> int:
    """Bytes a training forward keeps for the backward: the tensors autograd saves outside checkpoints plus the
    inputs the checkpoints keep for their recomputation, deduplicated by storage, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    held = {}

    def note(t):
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in params:
            held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        elif isinstance(t, dict):
            for value in t.values():
                note(value)
        return t

    for layer in model.model.layers:

        def noting(fn, *args, inner=layer._gradient_checkpointing_func):
            for arg in args:
                note(arg)
            return inner(fn, *args)

        layer._gradient_checkpointing_func = noting
    with torch.autograd.graph.saved_tensors_hooks(note, lambda t: t):
        model(ids, labels=ids)
    return sum(held.values())


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpointing_cuts_the_activation_memory(arch):
    """>= 3x less held for the backward (the issue's CPU goal; the ratio grows with depth, not with length)."""
    model = make_model(arch, num_hidden_layers=4).train()
    ids = torch.randint(3, 64, (1, 256), generator=torch.Generator().manual_seed(0))
    without = held_for_backward(model, ids)
    set_checkpointing(model, True)
    with_ckpt = held_for_backward(model, ids)
    assert without >= 3 * with_ckpt
