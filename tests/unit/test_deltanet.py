"""DeltaNet model: cache consistency, padding invariance, generate, save/load and fla parameter parity."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

import refine.models  # noqa: F401  (registers the model types)
from refine.models.base import FastWeightPreTrainedModel, ntp_loss
from refine.models.cache import FastWeightCache
from refine.models.deltanet import DeltaNetConfig, DeltaNetForCausalLM
from refine.models.tiny import deltanet_1p3b_config, tiny_config

TOL = {"atol": 1e-5, "rtol": 1e-5}
VOCAB, PAD, EOS = 64, 0, 2


def make_model(seed=0, **overrides) -> DeltaNetForCausalLM:
    torch.manual_seed(seed)
    config = tiny_config(
        "deltanet", VOCAB, hidden_size=32, num_heads=2, pad_token_id=PAD, eos_token_id=EOS, **overrides
    )
    return DeltaNetForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    return make_model()


def tokens(batch, length, seed=1):
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("overrides", [{}, {"use_gate": True, "allow_neg_eigval": True}, {"use_short_conv": False}])
def test_cached_decode_equals_full_forward(overrides):
    model, x = make_model(**overrides), tokens(2, 90)
    with torch.no_grad():
        full = model(x).logits
        out = model(x[:, :67], use_cache=True)
        pieces, cache = [out.logits], out.cache
        for t in range(67, 90):
            out = model(x[:, t : t + 1], cache=cache, use_cache=True)
            pieces.append(out.logits)
    torch.testing.assert_close(torch.cat(pieces, 1), full, **TOL)
    assert cache.seen_tokens == 90 and set(cache[0]) == {"recurrent", "q_conv", "k_conv", "v_conv"} - (
        set() if model.config.use_short_conv else {"q_conv", "k_conv", "v_conv"}
    )


def test_segmented_forward_equals_full_values_and_grads(model):
    x = tokens(2, 150)
    full = model(x, labels=x)
    grads_full = torch.autograd.grad(full.loss, list(model.parameters()))
    first = model(x[:, :3], use_cache=True)  # <= 4 tokens: the recurrent form (CPU); then the chunked one
    second = model(x[:, 3:], past_key_values=first.cache, use_cache=True)  # the pre-5.24 kwarg name
    logits = torch.cat([first.logits, second.logits], 1)
    torch.testing.assert_close(logits, full.logits, **TOL)
    grads = torch.autograd.grad(ntp_loss(logits, x), list(model.parameters()))
    for (name, _), a, b in zip(model.named_parameters(), grads, grads_full):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, n=name: f"grad {n}: {m}")


def test_left_padding_does_not_change_real_tokens(model):
    x = tokens(2, 80)
    ref = model(x, output_hidden_states=True)
    for pad in (3, 70):
        padded = torch.cat([torch.full((2, pad), PAD), x], 1)
        mask = torch.cat([torch.zeros(2, pad, dtype=torch.long), torch.ones_like(x)], 1)
        out = model(padded, attention_mask=mask, output_hidden_states=True)
        torch.testing.assert_close(out.logits[:, pad:], ref.logits, **TOL)
        torch.testing.assert_close(out.hidden_states[-1][:, pad:], ref.hidden_states[-1], **TOL)


def test_outputs_follow_the_design_contract(model):
    x = tokens(2, 10)
    out = model(x, output_hidden_states=True, use_cache=True)
    assert out.logits.dtype == torch.float32 and out.logits.shape == (2, 10, VOCAB)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(out.hidden_states[-1], model.model.norm(_last_layer(model, x)))
    assert out.cache is out.past_key_values and isinstance(out.cache, FastWeightCache)
    assert model(x).loss is None and model(x).cache is None
    with pytest.raises(TypeError):
        model(x, inputs_embeds=torch.zeros(2, 10, 32))


def _last_layer(model, x):
    hidden = model.model.embeddings(x)
    for layer in model.model.layers:
        hidden, _ = layer(hidden, None, None, False)
    return hidden


def test_ntp_loss_ignores_masked_and_minus_100_targets():
    logits, labels = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]])  # labels[:, t + 1] is the target of logits[:, t]
    labels[1, 3] = -100
    keep = torch.tensor([[True, False, True, True], [True, True, False, True]])
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:].clamp(min=0), reduction="none"
    )
    torch.testing.assert_close(ntp_loss(logits, labels, mask), per_token[keep].mean())
    assert ntp_loss(logits, torch.full_like(labels, -100)).item() == 0.0


def test_cache_fork_cat_detach(model):
    x = tokens(3, 20)
    with torch.no_grad():
        cache = model(x[:, :12], use_cache=True).cache
        forked = cache.fork(torch.tensor([2, 0, 0]))
        out = model(x[[2, 0, 0], 12:], cache=forked).logits
        ref = model(x[[2, 0, 0]]).logits[:, 12:]
        torch.testing.assert_close(out, ref, **TOL)
        joined = FastWeightCache.cat([cache.fork(torch.tensor([1])), cache.fork(torch.tensor([0, 2]))])
        torch.testing.assert_close(joined[1]["recurrent"], cache[1]["recurrent"][[1, 0, 2]])
        assert joined.seen_tokens == 12 and cache.seen_tokens == 12  # continuing a fork leaves the original untouched
    grad_cache = model(x[:, :5], use_cache=True).cache
    assert grad_cache[0]["recurrent"].requires_grad and not grad_cache.detach()[0]["recurrent"].requires_grad


def greedy_by_reforward(model, x, steps):
    for _ in range(steps):
        x = torch.cat([x, model(x).logits[:, -1].argmax(-1, keepdim=True)], 1)
    return x


def test_generate_greedy_equals_argmax_of_reforward_loop(model):
    assert type(model).generate is FastWeightPreTrainedModel.generate
    x = tokens(2, 7)
    out = model.generate(x, max_new_tokens=6, eos_token_id=VOCAB + 1, use_cache=True, return_dict_in_generate=False)
    with torch.no_grad():
        torch.testing.assert_close(out, greedy_by_reforward(model, x, 6), atol=0, rtol=0)
    assert model.generate(x, max_length=10, eos_token_id=VOCAB + 1).shape == (2, 10)


def test_generate_applies_the_head_to_one_position_per_forward(model):
    """The prefill computes no [B, T, V] logits: every head call sees one position per row."""
    rows = []
    hook = model.lm_head.register_forward_hook(lambda _m, _i, out: rows.append(tuple(out.shape[:2])))
    try:
        model.generate(tokens(2, 7), max_new_tokens=3, eos_token_id=VOCAB + 1)
    finally:
        hook.remove()
    assert rows == [(2, 1)] * 3


def test_generate_left_padded_batch_equals_single_rows(model):
    short, long = tokens(1, 4, seed=3), tokens(1, 9, seed=4)
    batch = torch.cat([torch.cat([torch.full((1, 5), PAD), short], 1), long])
    mask = (torch.arange(9) >= torch.tensor([[5], [0]])).long()
    out = model.generate(batch, attention_mask=mask, max_new_tokens=5, eos_token_id=VOCAB + 1)
    torch.testing.assert_close(out[0, 5:], model.generate(short, max_new_tokens=5, eos_token_id=VOCAB + 1)[0])
    torch.testing.assert_close(out[1], model.generate(long, max_new_tokens=5, eos_token_id=VOCAB + 1)[0])


def test_generate_sampling_is_seeded_and_respects_top_k():
    model, x = make_model(), tokens(3, 5)
    kwargs = {
        "max_new_tokens": 8,
        "do_sample": True,
        "temperature": 0.7,
        "top_k": 5,
        "top_p": 0.9,
        "eos_token_id": VOCAB + 1,
    }
    a = model.generate(x, generator=torch.Generator().manual_seed(0), **kwargs)
    b = model.generate(x, generator=torch.Generator().manual_seed(0), **kwargs)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    one = model.generate(x, do_sample=True, top_k=1, max_new_tokens=8, eos_token_id=VOCAB + 1)
    torch.testing.assert_close(one, model.generate(x, max_new_tokens=8, eos_token_id=VOCAB + 1), atol=0, rtol=0)


def test_generate_eos_min_new_tokens_and_padding(model):
    x = tokens(2, 6)
    greedy = greedy_by_reforward(model, x, 4)
    eos = int(greedy[0, 6])  # row 0 stops at once; row 1 never produces this token
    assert eos not in greedy[1, 6:].tolist()
    out = model.generate(x, max_new_tokens=4, eos_token_id=eos, pad_token_id=PAD)
    torch.testing.assert_close(out[1], greedy[1], atol=0, rtol=0)
    assert out[0, 6] == eos and out[0, 7:].eq(PAD).all()
    suppressed = model.generate(x, max_new_tokens=4, min_new_tokens=2, eos_token_id=eos, pad_token_id=PAD)
    assert suppressed[:, 6:8].ne(eos).all()
    by_length = model.generate(x, max_new_tokens=4, min_length=8, eos_token_id=eos, pad_token_id=PAD)
    torch.testing.assert_close(by_length, suppressed, atol=0, rtol=0)
    assert model.generate(x[:1], max_new_tokens=4, eos_token_id=eos).shape == (1, 7)  # all rows done: stop


class StopAfter(StoppingCriteria):
    """lm-eval style: one bool for the whole batch once ``n`` tokens were generated."""

    def __init__(self, prompt_len, n):
        self.prompt_len, self.n = prompt_len, n

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids.shape[1] - self.prompt_len >= self.n


def test_generate_honours_stopping_criteria(model):
    x = tokens(2, 6)
    out = model.generate(
        x, max_length=50, stopping_criteria=StoppingCriteriaList([StopAfter(6, 3)]), eos_token_id=VOCAB + 1
    )
    assert out.shape == (2, 9)


def test_save_and_load_round_trip_through_auto_classes(tmp_path, model):
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DeltaNetConfig) and config.model_type == "delta_net"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, DeltaNetForCausalLM)
    x = tokens(1, 12)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, atol=0, rtol=0)


def test_tied_embeddings(tmp_path):
    model = make_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embeddings.weight
    model.save_pretrained(tmp_path)
    loaded = DeltaNetForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embeddings.weight
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight, atol=0, rtol=0)


EXPECTED_LAYER_SHAPES = {  # fla 0.6.0 names (fla/layers/delta_net.py:128-168, modeling_delta_net.py)
    "attn_norm.weight": (32,),
    "attn.q_proj.weight": (32, 32),
    "attn.k_proj.weight": (32, 32),
    "attn.v_proj.weight": (32, 32),
    "attn.b_proj.weight": (2, 32),
    "attn.q_conv1d.weight": (32, 1, 4),
    "attn.k_conv1d.weight": (32, 1, 4),
    "attn.v_conv1d.weight": (32, 1, 4),
    "attn.o_norm.weight": (16,),
    "attn.o_proj.weight": (32, 32),
    "mlp_norm.weight": (32,),
    "mlp.gate_proj.weight": (256, 32),
    "mlp.up_proj.weight": (256, 32),
    "mlp.down_proj.weight": (32, 256),
}


def test_parameter_names_and_shapes_follow_fla(model):
    expected = {"model.embeddings.weight": (VOCAB, 32), "model.norm.weight": (32,), "lm_head.weight": (VOCAB, 32)}
    for i in range(2):
        expected |= {f"model.layers.{i}.{name}": shape for name, shape in EXPECTED_LAYER_SHAPES.items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert model.model.layers[0].attn.o_norm.weight.dtype == torch.float32


def test_state_dict_equals_fla_delta_net():
    try:
        from fla.models import DeltaNetConfig as FlaConfig
        from fla.models import DeltaNetForCausalLM as FlaDeltaNet
    except Exception as err:  # noqa: BLE001  (fla.models needs triton, absent on CPU installs)
        pytest.skip(f"fla.models does not import here ({type(err).__name__}: {err})")
    finally:
        refine.models.register_auto_classes()  # importing fla.models registered fla's classes over ours
    for config in (make_model().config, deltanet_1p3b_config(num_hidden_layers=1, vocab_size=128)):
        fla_config = FlaConfig(**config.to_diff_dict())
        with torch.device("meta"):
            ours, theirs = DeltaNetForCausalLM(config), FlaDeltaNet(fla_config)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in theirs.state_dict().items()
        }


def test_paper_config_matches_the_hub_model():
    config = deltanet_1p3b_config()
    assert (config.hidden_size, config.num_hidden_layers, config.num_heads, config.vocab_size) == (2048, 24, 16, 32000)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 2)
    with pytest.raises(NotImplementedError):
        DeltaNetConfig(qk_norm="sum")


def test_warp_logits_matches_transformers_warpers():
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from refine.models.base import warp_logits

    scores = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    expected = scores
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(10), TopPLogitsWarper(0.8)):
        expected = warper(None, expected)
    torch.testing.assert_close(warp_logits(scores, 0.7, 10, 0.8), expected, atol=0, rtol=0)


def test_cache_tracks_the_running_mask_and_cat_left_pads_it():
    short, long = FastWeightCache(1, track_attention_mask=True), FastWeightCache(1, track_attention_mask=True)
    short.update(0, s=torch.zeros(1, 3))
    long.update(0, s=torch.ones(2, 3))
    short.advance(2, torch.tensor([[0, 1]]))
    long.advance(3)
    long.advance(1, torch.tensor([[1], [0]]))
    assert long.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    joined = FastWeightCache.cat([short, long])
    assert joined.seen_tokens == 4 and joined.batch_size == 3
    assert joined.attention_mask.tolist() == [[0, 0, 0, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert joined.repeat_interleave(2)[0]["s"][:, 0].tolist() == [0, 0, 1, 1, 1, 1]
    untracked = FastWeightCache(1)
    untracked.advance(5, torch.tensor([[0, 1, 1, 1, 1]]))
    assert untracked.attention_mask is None and untracked.seen_tokens == 5


def test_decode_memory_is_flat_in_the_context_length():
    from refine.commands.bench import decode_memory

    peaks = decode_memory("deltanet", [64, 1024])["peak_bytes"]
    assert 0 < peaks[64] == peaks[1024]
