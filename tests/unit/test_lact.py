"""LaCT model: cache consistency, padding modes, generation, save/load (tiny fp32 models on CPU)."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM

import refine.models  # noqa: F401  (registration)
from refine.models.lact import LaCTConfig, LaCTForCausalLM
from refine.models.lact_cache import LaCTCache
from refine.models.tiny import lact_760m_config, tiny_config
from refine.ops.lact_ttt import l2_normalize, lact_swiglu_reference
from refine.ops.window_attn import rotary_embedding, window_attention_reference

VOCAB, CHUNK, WINDOW = 64, 8, 6
VARIANTS = {
    "default": {},  # post-norm, low-rank w0/w2, momentum (the 760M layout)
    "prenorm": {"ttt_prenorm": True, "w0_w2_low_rank": -1, "use_momentum": False, "attn_qk_norm": True},
    "nope": {"ttt_nope": True},  # fast weights without rotary positions (the tiny default)
}


def make_model(seed=0, **overrides) -> LaCTForCausalLM:
    """Tiny LaCT with all parameters perturbed (so scale/offset/norm weights are not trivially 1/0)."""
    torch.manual_seed(seed)
    small = {
        "hidden_size": 64,
        "num_attn_heads": 4,
        "num_lact_heads": 2,
        "lact_chunk_size": CHUNK,
        "window_size": WINDOW,
        "w0_w2_low_rank": 4,
    }
    cfg = tiny_config("lact", VOCAB, **{**small, **overrides})
    model = LaCTForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def batch(seed=0, rows=3, length=30, pads=(0, 5, 11)):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (rows, length), generator=gen)
    mask = torch.ones_like(ids)
    for row, n in enumerate(pads):
        mask[row, :n] = 0
    return ids, mask


@pytest.mark.parametrize("pad_invariant", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_decode_equals_full_forward(variant, pad_invariant):
    model = make_model(pad_invariant=pad_invariant, **VARIANTS[variant])
    ids, mask = batch()
    real = mask.bool()
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits
        out = model(ids[:, :13], attention_mask=mask[:, :13], use_cache=True)
        logits = [out.logits]
        for t in range(13, ids.shape[1]):
            out = model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=out.cache, use_cache=True)
            logits.append(out.logits)
    assert isinstance(out.cache, LaCTCache) and out.cache.seen_tokens == ids.shape[1]
    torch.testing.assert_close(torch.cat(logits, 1)[real], full[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_segmented_forward_equals_full_values_and_grads(variant):
    model = make_model(**VARIANTS[variant])
    ids, mask = batch(seed=1)
    full = model(ids, attention_mask=mask, labels=ids)
    full_grads = torch.autograd.grad(full.loss, list(model.parameters()))
    cache, logits = None, []
    for start, stop in [(0, 7), (7, 8), (8, 21), (21, 30)]:
        out = model(ids[:, start:stop], attention_mask=mask[:, :stop], cache=cache, use_cache=True)
        cache = out.cache
        logits.append(out.logits)
    seg_logits = torch.cat(logits, 1)
    real = mask.bool()
    torch.testing.assert_close(seg_logits[real], full.logits[real], rtol=1e-5, atol=1e-5)
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    seg_loss = F.cross_entropy(seg_logits[:, :-1].flatten(0, 1), targets.flatten())
    torch.testing.assert_close(seg_loss, full.loss)
    for g_seg, g_full in zip(torch.autograd.grad(seg_loss, list(model.parameters())), full_grads):
        torch.testing.assert_close(g_seg, g_full, rtol=1e-4, atol=1e-6)


def test_pad_invariant_outputs_do_not_depend_on_left_padding():
    model = make_model(pad_invariant=True)
    ids, mask = batch(seed=2)
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits
        for row, n in enumerate((0, 5, 11)):
            alone = model(ids[row : row + 1, n:]).logits[0]
            torch.testing.assert_close(padded[row, n:], alone, rtol=1e-5, atol=1e-5)


def test_official_mode_pads_enter_fast_weights():
    """Default (official) mode: left padding changes the real tokens' outputs (spec 2, 10.6) ..."""
    model = make_model()
    ids, mask = batch(seed=2)
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits
        alone = model(ids[2:, 11:]).logits[0]
    assert (padded[2, 11:] - alone).abs().max() > 1e-2


def test_official_mode_layer_equals_padded_layout_computation():
    """... because the layer is exactly: window attention over real keys + fast weights over the padded
    tensor,
    chunks aligned to column 0 and rotary positions counting pads (layer_lact_swiglu.py:248-414)."""
    model = make_model()
    layer, cfg = model.model.layers[0].attn, model.config
    ids, mask = batch(seed=3)
    x = torch.randn(*ids.shape, cfg.hidden_size)
    positions = torch.arange(ids.shape[1])
    with torch.no_grad():
        out, _ = layer(x, mask, positions.expand_as(ids), None, None)

        b, t, _ = x.shape
        q, k, v = layer.qkv(x).chunk(3, dim=-1)
        heads = lambda z, n: z.reshape(b, t, n, -1)
        attn = window_attention_reference(
            rotary_embedding(heads(q, 4), positions, cfg.rope_theta),
            rotary_embedding(heads(k, 4), positions, cfg.rope_theta),
            heads(v, 4),
            WINDOW,
            mask,
        )
        fq = q * layer.qk_scale[:, 0] + layer.qk_offset[:, 0]
        fk = k * layer.qk_scale[:, 1] + layer.qk_offset[:, 1]
        fq, fk, fv = (F.silu(heads(z, 2)) for z in (fq, fk, v))
        fq, fk = (rotary_embedding(heads(l2_normalize(z), 4), positions, cfg.rope_theta) for z in (fq, fk))
        fold = lambda z: z.reshape(b, t, 2, -1).transpose(1, 2).flatten(0, 1)
        lr = F.softplus(layer.lr_proj(x) + layer.base_lr_inv).reshape(b, t, 2, 3).transpose(1, 2).flatten(0, 1)
        w0, w1, w2 = (w.repeat(b, 1, 1) for w in layer.initial_weights())
        fast = lact_swiglu_reference(
            w0,
            w1,
            w2,
            fold(fq),
            fold(fk),
            fold(fv),
            lr[..., :1],
            lr[..., 1:2],
            lr[..., 2:],
            fold(layer.momentum_proj(x)),
            chunk_size=CHUNK,
        )
        fast = layer.ttt_norm(fast.unflatten(0, (b, 2)).transpose(1, 2))
        fast = fast * F.silu(layer.ttt_scale_proj(x))[..., None]
        expected = layer.o_proj(attn.flatten(-2) + fast.flatten(-2))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nope", [False, True])
def test_fast_weight_lookup_depends_on_position_only_with_rotary(nope):
    """``ttt_nope`` takes the rotary off the fast weights' q/k (layer:345-361): the layer (whose window attention
    sees relative positions only) then gives the same output wherever the sequence starts; with the rotary it does
    not."""
    model = make_model(ttt_nope=nope)
    layer = model.model.layers[0].attn
    x = torch.randn(2, 20, model.config.hidden_size)
    with torch.no_grad():
        out = [layer(x, None, torch.arange(20).expand(2, -1) + s, None, None)[0] for s in (0, 97)]
    shift = (out[0] - out[1]).abs().max().item()
    assert shift < 1e-6 if nope else shift > 1e-3


@pytest.mark.parametrize("base_lr", [None, 0.1])
def test_fast_weight_base_learning_rate(base_lr):
    """Where ``lr_proj`` gives 0 the fast weights learn at ``fw_base_lr`` (softplus of the stored inverse,
    layer:35-40, :372-378): the official 1e-3 unless the config scales it."""
    model = make_model(**({} if base_lr is None else {"fw_base_lr": base_lr}))
    layer = model.model.layers[0].attn
    assert F.softplus(torch.tensor(layer.base_lr_inv)).item() == pytest.approx(base_lr or 1e-3, rel=1e-5)


@pytest.mark.parametrize("pad_invariant", [False, True])
def test_generate_greedy_equals_argmax_reforward(pad_invariant):
    model = make_model(pad_invariant=pad_invariant)
    ids, mask = batch(seed=4, length=12, pads=(0, 4, 9))
    out = model.generate(ids, attention_mask=mask, max_new_tokens=10, eos_token_id=None, pad_token_id=0)
    seq, seq_mask = ids, mask
    with torch.no_grad():
        for _ in range(10):
            nxt = model(seq, attention_mask=seq_mask).logits[:, -1].argmax(-1, keepdim=True)
            seq, seq_mask = torch.cat([seq, nxt], 1), torch.cat([seq_mask, torch.ones_like(nxt)], 1)
    assert torch.equal(out, seq)


@pytest.mark.parametrize("pad_invariant", [False, True])
def test_fork_and_cat_continue_rows(pad_invariant):
    model = make_model(pad_invariant=pad_invariant)
    ids, mask = batch(seed=5)
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits
        cache = model(ids[:, :20], attention_mask=mask[:, :20], use_cache=True).cache
        forked = cache.fork(torch.tensor([2, 0, 2]))
        out = model(ids[[2, 0, 2], 20:], attention_mask=mask[[2, 0, 2]], cache=forked).logits
        torch.testing.assert_close(out, full[[2, 0, 2], 20:], rtol=1e-5, atol=1e-5)
        # rows with different histories (lengths, chunk phases, rotary positions) batched together continue each
        # exactly as alone, in either padding mode, also after a fork of the joined cache
        alone = [model(ids[1:2, 5:21], attention_mask=mask[1:2, 5:21]), model(ids[2:3, 11:29])]
        short = model(ids[1:2, 5:17], attention_mask=mask[1:2, 5:17], use_cache=True).cache
        long = model(ids[2:3, 11:25], use_cache=True).cache
        joined = LaCTCache.cat([short, long]).fork(torch.tensor([1, 0]))
        nxt = torch.stack([ids[2, 25:29], ids[1, 17:21]])
        out = model(nxt, attention_mask=torch.cat([joined.attention_mask, torch.ones(2, 4)], 1), cache=joined)
        torch.testing.assert_close(out.logits[0], alone[1].logits[0, 14:], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.logits[1], alone[0].logits[0, 12:], rtol=1e-5, atol=1e-5)


def test_outputs_loss_and_hidden_states():
    model = make_model()
    ids, mask = batch(seed=6)
    out = model(ids, attention_mask=mask, labels=ids, output_hidden_states=True)
    assert out.logits.dtype == torch.float32 and out.logits.shape == (*ids.shape, VOCAB)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(model.lm_head(out.hidden_states[-1]), out.logits)
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[:, :-1].flatten(0, 1), targets.flatten()))


def test_save_load_and_auto_classes(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "lact_swiglu"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, LaCTForCausalLM)
    ids, mask = batch(seed=7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_configs():
    assert LaCTConfig().model_type == "lact_swiglu" and not LaCTConfig().pad_invariant
    cfg = lact_760m_config()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attn_heads, cfg.num_lact_heads) == (
        1536,
        24,
        24,
        4,
    )
    assert (cfg.w0_w2_low_rank, cfg.lact_chunk_size, cfg.window_size, cfg.rope_theta) == (32, 2048, 2048, 1e6)
    with torch.device("meta"):
        names = {n for n, _ in LaCTForCausalLM(cfg).named_parameters()}
    for name in (
        "model.embeddings.weight",
        "model.layers.0.attn_norm.weight",
        "model.layers.0.attn.qkv.weight",
        "model.layers.0.attn.o_proj.weight",
        "model.layers.0.attn.w0.w_left",
        "model.layers.0.attn.w2.w_right",
        "model.layers.0.attn.w1",
        "model.layers.0.attn.lr_proj.bias",
        "model.layers.0.attn.qk_scale",
        "model.layers.0.attn.qk_offset",
        "model.layers.0.attn.ttt_norm.weight",
        "model.layers.0.attn.ttt_scale_proj.weight",
        "model.layers.0.attn.momentum_proj.0.weight",
        "model.layers.0.mlp_norm.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ):
        assert name in names
