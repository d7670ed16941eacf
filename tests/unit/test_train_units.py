"""Trainer building blocks without a language model: configs, data order, schedule, optimizer step, state."""

from __future__ import annotations

import math

import pytest
import torch

from refine.train.config import MidConfig, OptimConfig, PostConfig, PretrainConfig, TTTConfig
from refine.train.distributed import Dist
from refine.train.metrics import MetricsLog
from refine.train.optim import OptimizerStep, build_optimizer, build_scheduler
from refine.train.state import TrainState
from refine.train.trainer import BatchPlan


def test_stage_defaults_are_the_papers():
    """Spec 6: lr 1e-6, AdamW (0.9, 0.999), wd 0.01; reward, lambda_RL, batch and mini-batch per phase."""
    assert OptimConfig() == OptimConfig(lr=1e-6, betas=(0.9, 0.999), weight_decay=0.01, schedule="constant")
    mid, post, ttt = MidConfig(), PostConfig(), TTTConfig()
    assert (mid.refine.reward, mid.refine.lambda_rl, mid.batch_size, mid.refine.mini_batch_size) == (
        "cosine",
        0.2,
        128,
        32,
    )
    assert (post.refine.reward, post.refine.lambda_rl, post.batch_size, post.refine.mini_batch_size) == (
        "hybrid",
        0.2,
        64,
        16,
    )
    assert (ttt.refine.reward, ttt.refine.lambda_rl, ttt.refine.mini_batch_size) == ("binary", 0.4, 4)
    assert (ttt.generation.batch_size, ttt.generation.drop_last, ttt.reset) == (8, True, "cumulative")
    assert post.max_length == 16384 - 32 and ttt.generation.max_prompt_length == 16384 - 32
    assert not mid.matched_steps


def test_from_dict_merges_nested_and_rejects_unknown_keys():
    cfg = PostConfig.from_dict({"batch_size": 4, "optim": {"lr": 1e-3, "betas": [0.9, 0.95]}, "refine": {"k": 3}})
    assert cfg.batch_size == 4 and cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.01
    assert cfg.refine.k == 3 and cfg.refine.reward == "hybrid"  # the stage's other defaults stay
    with pytest.raises(ValueError, match=r"PostConfig.refine: unknown key\(s\) \['kk'\]"):
        PostConfig.from_dict({"refine": {"kk": 1}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['val_every'\]"):
        PretrainConfig.from_dict({"val_every": 2})


def test_batch_plan_is_seeded_per_epoch_and_drops_the_last_partial_batch():
    plan = BatchPlan(n_items=10, batch_size=4, steps=6, seed=3)
    epoch0 = plan.indices(0) + plan.indices(1)
    assert len(set(epoch0)) == 8 and plan.indices(2) != plan.indices(0)  # 2 batches per epoch, reshuffled
    assert [plan.indices(s) for s in range(6)] == [BatchPlan(10, 4, 6, 3).indices(s) for s in range(6)]
    assert BatchPlan(10, 4, 6, 4).indices(0) != plan.indices(0)
    assert BatchPlan(10, 4, 6, 3, shuffle=False).indices(1) == [4, 5, 6, 7]


def test_schedule_constant_warmup_and_cosine():
    param = torch.nn.Parameter(torch.zeros(1))

    def lrs(cfg, total):
        optimizer = torch.optim.SGD([param], lr=cfg.lr)
        sched = build_scheduler(optimizer, cfg, total)
        out = []
        for _ in range(total):
            out.append(sched.get_last_lr()[0])
            optimizer.step()
            sched.step()
        return out

    assert lrs(OptimConfig(lr=1.0), 3) == [1.0, 1.0, 1.0]
    cos = lrs(OptimConfig(lr=1.0, schedule="cosine", warmup_steps=2, min_lr_ratio=0.1), 6)
    assert cos[:3] == [0.5, 1.0, 1.0] and cos[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.75)))


def test_non_finite_loss_is_skipped_and_counted_never_written():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = OptimizerStep(model, build_optimizer(model, OptimConfig(lr=0.1)), 1.0, Dist())
    x = torch.randn(4, 3)
    opt(model(x).pow(2).mean())  # one real step: AdamW state exists
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in opt.optimizer.state[model.weight].items()}
    out = opt(model(x).sum() * float("nan"))
    assert out["skipped"] == 1.0 and (opt.taken, opt.skipped) == (1, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(moments[k], v) for k, v in opt.optimizer.state[model.weight].items())
    assert all(p.grad is None for p in model.parameters())
    opt(model(x).pow(2).mean())
    assert opt.taken == 2 and all(torch.isfinite(p).all() for p in model.parameters())


def test_grad_norm_is_clipped():
    model = torch.nn.Linear(2, 1, bias=False)
    opt = OptimizerStep(model, torch.optim.SGD(model.parameters(), lr=1.0), 0.5, Dist())
    before = model.weight.detach().clone()
    out = opt(model(torch.full((1, 2), 100.0)).sum())
    assert out["grad_norm"] > 0.5 and float((before - model.weight.detach()).norm()) == pytest.approx(0.5)


def test_state_roundtrip_and_latest_pointer(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(model, OptimConfig(lr=0.1))
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.1), 10)
    gen = torch.Generator().manual_seed(5)
    state = TrainState(tmp_path / "state", Dist())
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    for step in (1, 2):
        state.save(step, model, optimizer, scheduler, {"rollout": gen}, note=step)
    assert state.latest().name == "step-2" and [p.name for p in (tmp_path / "state").glob("step-*")] == ["step-2"]
    expected_draw = torch.rand(3, generator=gen)
    expected_global = torch.rand(2)
    clone = torch.nn.Linear(3, 2)
    opt2 = build_optimizer(clone, OptimConfig(lr=0.1))
    gen2 = torch.Generator().manual_seed(99)
    saved = state.load(clone, opt2, build_scheduler(opt2, OptimConfig(lr=0.1), 10), {"rollout": gen2})
    assert saved["step"] == 2 and saved["note"] == 2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone.state_dict().values()))
    assert torch.equal(torch.rand(3, generator=gen2), expected_draw) and torch.equal(torch.rand(2), expected_global)
    assert TrainState(None, Dist()).load(clone, opt2, None, {}) is None
    other = TrainState(tmp_path / "state", Dist(), fingerprint="another config")
    assert other.load(clone, opt2, None, {}) is None


def test_metrics_log_drops_rows_after_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl", enabled=True)
    log.truncate_after(0)
    for step in (0, 1, 2, 3):
        log.write({"step": step, "split": "train", "loss": float("nan") if step == 3 else 1.0})
    assert (tmp_path / "m.jsonl").read_text().splitlines()[-1].endswith('"loss": null}')
    log.truncate_after(2)
    assert [line.count('"step": 3') for line in (tmp_path / "m.jsonl").read_text().splitlines()] == [0, 0, 0]
    assert MetricsLog(tmp_path / "x.jsonl", enabled=False).path is None


def test_ablation_method_names_set_the_refine_variant():
    from refine.train.stages import resolve_method

    base = MidConfig().refine
    assert resolve_method("sft", base) == ("sft", base) and resolve_method("refine", base) == ("refine", base)
    method, cfg = resolve_method("refine_uniform_k3", base)
    assert (method, cfg.sampling, cfg.k, cfg.reward) == ("refine", "uniform", 3, "cosine")
    assert resolve_method("refine_binary", base)[1].reward == "binary"
    assert resolve_method("refine_c4", base)[1].c == 4
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        resolve_method("refine_fast", base)
    with pytest.raises(ValueError, match="--method must be"):
        resolve_method("nested_refine", base)


def test_cli_length_sets_the_prompt_budget_and_missing_options_are_named():
    import argparse

    from refine.commands.train import add_parser, run, stage_config

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    post = parser.parse_args(["train", "--stage", "post", "--length", "1024", "--cfg", '{"max_answer_length": 16}'])
    assert stage_config(post, post.length[0]).max_length == 1024 - 16  # spec 5.2: L - answer budget
    ttt = parser.parse_args(["train", "--stage", "ttt", "--length", "4096"])
    assert stage_config(ttt, 4096).generation.max_prompt_length == 4096 - 32  # spec 5.3: 16384 - 32 at full scale
    with pytest.raises(ValueError, match="--stage mid needs --method, --base, --data, --out"):
        run(parser.parse_args(["train", "--stage", "mid"]))


def test_per_rank_shares_the_global_mini_batch_and_slices():
    from refine.rl.config import RefineConfig
    from refine.train.updates import per_rank

    paper = RefineConfig(mini_batch_size=32, slices=8, ntp_micro_batch=2)
    mine = per_rank(paper, 4)
    assert (mine.mini_batch_size, mine.slices, mine.ntp_micro_batch) == (8, 2, 2)  # micro-batches are per GPU
    assert per_rank(RefineConfig(mini_batch_size=32), 4).slices is None
    with pytest.raises(ValueError, match="refine.slices 4 does not split over 8 ranks"):
        per_rank(RefineConfig(mini_batch_size=32, slices=4), 8)


def test_fused_linear_ce_switch_sets_the_model_and_keeps_the_sft_step():
    """`fused_linear_ce` turns the model's fused NTP path on for the run; the SFT update is unchanged."""
    from refine.models.deltanet import DeltaNetForCausalLM
    from refine.models.tiny import tiny_config
    from refine.train.config import RunConfig
    from refine.train.trainer import Trainer
    from refine.train.updates import sft_update

    ids = torch.randint(0, 64, (2, 48), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = DeltaNetForCausalLM(tiny_config("deltanet", 64))
        trainer = Trainer(model, RunConfig(fused_linear_ce=fused), Dist(), seed=0, total_steps=1)
        assert model.config.fuse_linear_cross_entropy is fused
        out = sft_update(trainer.model, batch, 2, 1, trainer.opt)
        results.append((out["loss"], [p.detach().clone() for p in model.parameters()]))
    (loss_plain, w_plain), (loss_fused, w_fused) = results
    assert loss_fused == pytest.approx(loss_plain, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(w_plain, w_fused))


def test_document_rows_learn_from_their_start_and_weigh_the_same():
    """`document_batch` right-pads and labels each row from its first token to learn; `sft_update(per_document)`
    reports the mean over rows of each row's token-mean CE (not the token mean over the batch)."""
    from refine.models.deltanet import DeltaNetForCausalLM
    from refine.models.tiny import tiny_config
    from refine.train.config import RunConfig
    from refine.train.data import document_batch
    from refine.train.trainer import Trainer
    from refine.train.updates import sft_update

    rows = [([5, 6, 7, 8, 9, 10, 11, 12], 0), ([20, 21, 22, 23, 24], 3)]  # prose; a 3-token context, then its answer
    batch = document_batch(rows, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12], [20, 21, 22, 23, 24, 0, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12], [-100, -100, -100, 23, 24, -100, -100, -100]]
    torch.manual_seed(0)
    model = DeltaNetForCausalLM(tiny_config("deltanet", 64))
    with torch.no_grad():
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ce = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch["labels"][:, 1:], ignore_index=-100, reduction="none"
        )
    targets = batch["labels"][:, 1:] != -100  # 7 targets in row 0, 2 (the answer) in row 1
    expected = ((ce * targets).sum(1) / targets.sum(1)).mean().item()
    trainer = Trainer(model, RunConfig(), Dist(), seed=0, total_steps=1)
    out = sft_update(trainer.model, batch, 2, 1, trainer.opt, per_document=True)
    assert out["loss"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx((ce * targets).sum().item() / targets.sum().item(), rel=1e-3)
