"""Rollout-start selection (spec 4.2-4.3): smoothing, chunking, sampling strategies, clamp."""

import pytest
import torch

from refine.rl.config import RefineConfig
from refine.rl.selection import chunk_starts, pick_in_chunks, select_positions, smooth_entropy


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_smoothing_is_centred_and_zero_padded_at_the_edges():
    h = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    out = smooth_entropy(h, k=5)
    # count_include_pad: the edges divide by 5 although only 3 / 4 values are real
    assert out[0].tolist() == pytest.approx([6 / 5, 10 / 5, 15 / 5, 20 / 5, 18 / 5, 15 / 5])


def test_even_k_uses_width_k_plus_one_and_k1_is_identity():
    h = torch.tensor([[3.0, 0.0, 0.0, 6.0, 0.0]])
    assert smooth_entropy(h, k=2)[0].tolist() == pytest.approx([1.0, 1.0, 2.0, 2.0, 2.0])  # width 3
    assert torch.equal(smooth_entropy(h, k=1), h)


def test_chunks_start_at_first_real_token_and_drop_the_remainder():
    mask = torch.tensor([[0, 0, 0] + [1] * 11, [1] * 14])
    starts, chunk_len = chunk_starts(mask, c=3)
    assert chunk_len.tolist() == [3, 4]  # 11 // 3, 14 // 3
    assert starts.tolist() == [[3, 6, 9], [0, 4, 8]]  # last real tokens 12, 13 never start a chunk


def test_chunking_rejects_sequences_shorter_than_c():
    with pytest.raises(ValueError, match="fewer real tokens"):
        chunk_starts(torch.tensor([[0, 1, 1]]), c=3)


def test_argmax_argmin_pick_the_extremes_of_each_chunk():
    scores = torch.tensor([[0.0, 5.0, 1.0, 9.0, 2.0, 3.0]])
    starts, chunk_len = torch.tensor([[0, 3]]), torch.tensor([3])
    assert pick_in_chunks(scores, starts, chunk_len, "argmax", gen()).tolist() == [[1, 0]]
    assert pick_in_chunks(scores, starts, chunk_len, "argmin", gen()).tolist() == [[0, 1]]


def test_entropy_sampling_is_softmax_over_the_chunk():
    # 2000 chunks of 2 with scores (0, log 3): p(offset 1) = 3/4; a last chunk where one huge score wins surely
    scores = torch.tensor([0.0, torch.log(torch.tensor(3.0)).item()] * 2000 + [50.0, 0.0])[None]
    starts = torch.arange(0, 4002, 2)[None]
    picks = pick_in_chunks(scores, starts, torch.tensor([2]), "entropy", gen())[0]
    assert picks[:-1].float().mean().item() == pytest.approx(0.75, abs=0.04)
    assert picks[-1] == 0


def test_uniform_sampling_ignores_entropy():
    entropy = torch.zeros(1, 100)
    entropy[0, 30] = 100.0  # would dominate entropy sampling
    mask = torch.ones(1, 100, dtype=torch.long)
    picks = torch.cat([select_positions(entropy, mask, 1, 1, "uniform", 0, gen(s)) for s in range(300)])
    assert picks.unique().numel() > 50  # spread, not concentrated at 31
    assert (select_positions(entropy, mask, 1, 1, "entropy", 0, gen()) == 31).all()


def test_rollout_start_is_chunk_start_plus_t_plus_one_then_clamped():
    length, margin = 40, 5
    mask = torch.tensor([[0] * 4 + [1] * 36])  # first real 4, 36 real, c=4 -> chunks of 9 at 4, 13, 22, 31
    entropy = torch.zeros(1, length)
    for pos in (4, 15, 28, 39):  # argmax: chunk offsets 0, 2, 6, 8
        entropy[0, pos] = 1.0
    r = select_positions(entropy, mask, c=4, k=1, sampling="argmax", margin=margin, generator=gen())
    # raw starts 5, 16, 29, 40 -> clamp to [4 + 5, 40 - 5] = [9, 35]
    assert r.tolist() == [[9, 16, 29, 35]]


def test_positions_are_reproducible_with_the_seed():
    entropy, mask = torch.rand(2, 200, generator=gen(1)), torch.ones(2, 200, dtype=torch.long)
    a = select_positions(entropy, mask, 8, 5, "entropy", 20, gen(7))
    b = select_positions(entropy, mask, 8, 5, "entropy", 20, gen(7))
    assert torch.equal(a, b) and a.shape == (2, 8)


def test_too_short_sequence_raises():
    with pytest.raises(ValueError, match="too short"):
        select_positions(torch.zeros(1, 30), torch.ones(1, 30, dtype=torch.long), 2, 5, "entropy", 20, gen())


def test_config_rejects_unknown_keys_and_values():
    assert RefineConfig.from_dict({"c": 4, "reward": "binary"}).c == 4
    with pytest.raises(ValueError, match=r"\['bogus'\]"):
        RefineConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="sampling"):
        RefineConfig(sampling="random")
