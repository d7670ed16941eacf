"""The four stages of `refine train` (spec 5): data -> `Trainer` -> HF checkpoint (TTT: evaluation record).

Every function runs unchanged on 1 process or under torchrun (`dist`); rank 0 writes all outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from refine.data.batching import encode_prompt_answer, encode_prompts
from refine.data.tokenizer import load_tokenizer
from refine.evaluate.generation import Batch
from refine.rl.step import refine_update
from refine.train.config import MidConfig, PostConfig, PretrainConfig, TTTConfig
from refine.train.data import encode_texts, pack, read_column, text_batch
from refine.train.distributed import Dist
from refine.train.state import save_checkpoint
from refine.train.trainer import BatchPlan, Trainer
from refine.train.updates import inner_update, nested_update, ntp_validation, per_rank, sft_update

MID_METHODS = ("sft", "refine")
POST_METHODS = ("sft", "nested_sft", "nested_refine")
TTT_METHODS = ("sft", "refine")


def seed_everything(seed: int) -> None:
    """Same seed on every rank, so models built from scratch start identical."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_pretrained(path: Path | str):
    """(model in fp32, tokenizer) of an HF checkpoint directory written by a previous stage."""
    from transformers import AutoModelForCausalLM

    import refine.models  # noqa: F401  (registers our model types)

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32), load_tokenizer(path)


def _finish(trainer: Trainer, tokenizer, out: Path | str | None, dist: Dist) -> None:
    if out and dist.main:
        save_checkpoint(trainer.model, tokenizer, out)
    dist.barrier()


def _check_method(method: str, allowed: tuple[str, ...], stage: str) -> None:
    if method not in allowed:
        raise ValueError(f"--stage {stage}: --method must be one of {allowed}, got {method!r}")


def pretrain(
    cfg: PretrainConfig,
    *,
    arch: str,
    tokenizer: Path | str,
    data: Path | str,
    out=None,
    metrics=None,
    state=None,
    seed: int = 0,
    dist: Dist | None = None,
) -> Trainer:
    """NTP from scratch on the corpus, packed into rows of `max_length` (the tiny base models)."""
    from transformers import AutoModelForCausalLM

    from refine.models.tiny import tiny_config

    dist = dist or Dist()
    tok = load_tokenizer(tokenizer)
    seed_everything(seed)
    config = tiny_config(arch, len(tok), **cfg.model)
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    model = AutoModelForCausalLM.from_config(config)
    rows = pack(encode_texts(data, tok, None), cfg.max_length, tok.eos_token_id)
    plan = BatchPlan.for_stage(len(rows), cfg, seed)
    trainer = Trainer(
        model,
        cfg,
        dist,
        seed=seed,
        total_steps=plan.steps,
        metrics=metrics,
        state=state,
        desc=f"pretrain {arch}",
    )
    trainer.fit(
        plan,
        lambda idx: text_batch([rows[i] for i in idx], tok.pad_token_id, cfg.max_length),
        lambda b: sft_update(trainer.model, b, cfg.micro_batch_size, 1, trainer.opt),
        save_every=cfg.save_every,
    )
    _finish(trainer, tok, out, dist)
    return trainer


def mid(
    cfg: MidConfig,
    *,
    method: str,
    base: Path | str,
    data: Path | str,
    val_data=None,
    out=None,
    metrics=None,
    state=None,
    seed: int = 0,
    dist: Dist | None = None,
) -> Trainer:
    """Mid-training on long documents (spec 5.1): NTP-only SFT or REFINE, validated every `val_every`."""
    _check_method(method, MID_METHODS, "mid")
    dist = dist or Dist()
    model, tok = load_pretrained(base)
    seed_everything(seed)
    docs = encode_texts(data, tok, cfg.max_length)
    plan = BatchPlan.for_stage(len(docs), cfg, seed)
    trainer = Trainer(
        model,
        cfg,
        dist,
        seed=seed,
        total_steps=plan.steps,
        metrics=metrics,
        state=state,
        desc=f"mid {method}",
    )
    rcfg = per_rank(cfg.refine, dist.world)
    validate = None
    if val_data:
        val_docs = encode_texts(val_data, tok, cfg.max_length)[: cfg.val_max_docs or None]
        if len(val_docs) < dist.world:
            raise ValueError(f"{val_data}: {len(val_docs)} validation documents for {dist.world} ranks")
        validate = _mid_validation(trainer, val_docs[dist.rank :: dist.world], cfg, tok.pad_token_id)
    trainer.fit(
        plan,
        lambda idx: text_batch([docs[i] for i in idx], tok.pad_token_id, cfg.max_length),
        lambda b: inner_update(
            method,
            trainer.model,
            b,
            rcfg,
            cfg.micro_batch_size,
            cfg.matched_steps,
            trainer.opt,
            trainer.generator,
        ),
        validate=validate,
        val_every=cfg.val_every,
        val_before=cfg.val_before_train,
        save_every=cfg.save_every,
    )
    _finish(trainer, tok, out, dist)
    return trainer


def _mid_validation(trainer: Trainer, docs: list[list[int]], cfg: MidConfig, pad: int):
    """Validation on held-out documents (spec 5.1): NTP loss (mean over micro-batches), sampled-token
    accuracy and, with `val_rewards`, the reward statistics of REFINE rollouts (no update) on them."""
    size = max(1, cfg.val_batch_size // trainer.dist.world)
    rollout_cfg = dataclasses.replace(cfg.refine, mini_batch_size=None)  # one no-op "update": rollouts only

    def validate(generator: torch.Generator) -> dict:
        sums: dict[str, float] = defaultdict(float)
        for start in range(0, len(docs), size):
            batch = text_batch(docs[start : start + size], pad, cfg.max_length)
            for key, value in ntp_validation(trainer.model, batch, cfg.micro_batch_size, generator).items():
                sums[key] += value
            if cfg.val_rewards:
                with torch.no_grad():
                    device = trainer.dist.device
                    out = refine_update(
                        trainer.model,
                        batch["input_ids"].to(device),
                        batch["attention_mask"].to(device),
                        rollout_cfg,
                        lambda loss: {},
                        generator,
                    )
                for key in (k for k in out if k.startswith("reward_")):
                    sums[key] += out[key]
                sums["batches"] += 1
        keys = sorted(sums)
        total = dict(zip(keys, trainer.dist.all_sum([sums[k] for k in keys])))
        row = {
            "loss": total["loss_sum"] / total["micro_batches"],
            "ntp_acc": total["hits"] / total["positions"],
        }
        row.update({k: v / total["batches"] for k, v in total.items() if k.startswith("reward_")})
        return row

    return validate


def post(
    cfg: PostConfig,
    *,
    method: str,
    base: Path | str,
    data: Path | str,
    out=None,
    metrics=None,
    state=None,
    seed: int = 0,
    dist: Dist | None = None,
) -> Trainer:
    """Post-training on one task x length (spec 5.2) from the REFINE mid-trained model."""
    _check_method(method, POST_METHODS, "post")
    dist = dist or Dist()
    model, tok = load_pretrained(base)
    seed_everything(seed)
    prompts, answers = read_column(data, "prompt"), read_column(data, "answer")

    def make_batch(idx: list[int]) -> dict:
        texts, targets = [prompts[i] for i in idx], [answers[i] for i in idx]
        return {
            "prompt": encode_prompts(texts, tok, cfg.max_length, source=str(data)),
            "answer": encode_prompt_answer(
                texts, targets, tok, cfg.max_length, cfg.max_answer_length, source=str(data)
            ),
        }

    plan = BatchPlan.for_stage(len(prompts), cfg, seed)
    trainer = Trainer(
        model,
        cfg,
        dist,
        seed=seed,
        total_steps=plan.steps,
        metrics=metrics,
        state=state,
        desc=f"post {method}",
    )
    rcfg = per_rank(cfg.refine, dist.world)
    trainer.fit(
        plan,
        make_batch,
        lambda b: nested_update(
            method,
            trainer.model,
            b,
            rcfg,
            cfg.micro_batch_size,
            cfg.matched_steps,
            trainer.opt,
            trainer.generator,
        ),
        save_every=cfg.save_every,
    )
    _finish(trainer, tok, out, dist)
    return trainer


class TestTimeTraining:
    """The evaluation runner's `before_batch` hook (spec 5.3): adapt on the batch's prompts, in file order.

    `sft`: NTP on the prompts (spec 4.10); `refine`: REFINE with the configured (binary) reward. The runner
    then generates greedily with the adapted weights. `reset: cumulative` (the official code, spec 10.3)
    keeps weights and AdamW moments across batches; `per_batch` restores both before every batch.
    """

    __test__ = False  # not a pytest class

    def __init__(self, trainer: Trainer, method: str, cfg: TTTConfig):
        _check_method(method, TTT_METHODS, "ttt")
        if cfg.reset not in ("cumulative", "per_batch"):
            raise ValueError(f"reset: unknown {cfg.reset!r} (cumulative | per_batch)")
        self.trainer, self.method, self.cfg = trainer, method, cfg
        self.rcfg = per_rank(cfg.refine, trainer.dist.world)
        self.initial = None
        if cfg.reset == "per_batch":
            self.initial = (
                copy.deepcopy(trainer.model.state_dict()),
                copy.deepcopy(trainer.optimizer.state_dict()),
            )

    def __call__(self, batch: Batch) -> None:
        t = self.trainer
        if self.initial is not None:
            t.model.load_state_dict(self.initial[0])
            t.optimizer.load_state_dict(copy.deepcopy(self.initial[1]))
        rows = t.dist.shard(range(batch.input_ids.shape[0]))
        part = {
            "input_ids": batch.input_ids[rows.start : rows.stop],
            "attention_mask": batch.attention_mask[rows.start : rows.stop],
        }
        with t.autocast():
            out = inner_update(
                self.method,
                t.model,
                part,
                self.rcfg,
                self.cfg.micro_batch_size,
                self.cfg.matched_steps,
                t.opt,
                t.generator,
            )
        t.step += 1
        t.log_row("train", t.reduce(out))


def ttt(
    cfg: TTTConfig,
    *,
    method: str,
    base: Path | str,
    data: Path | str,
    family: str,
    metrics=None,
    seed: int = 0,
    dist: Dist | None = None,
) -> dict:
    """Test-time training over one evaluation file (spec 5.3); returns the runner's scoring result.

    The file is read in order, in batches of `generation.batch_size` with drop_last; each batch is adapted
    on (TestTimeTraining) and then answered greedily by `refine.evaluate.runner`.
    """
    from refine.evaluate.runner import evaluate_longbench, evaluate_qa, load_rows

    if family not in ("qa", "longbench"):
        raise ValueError(f"--family must be qa or longbench for test-time training, got {family!r}")
    dist = dist or Dist()
    model, tok = load_pretrained(base)
    seed_everything(seed)
    rows = load_rows(data)
    n_batches = len(rows) // cfg.generation.batch_size
    trainer = Trainer(
        model, cfg, dist, seed=seed, total_steps=n_batches, metrics=metrics, desc=f"ttt {method}"
    )
    trainer.metrics.truncate_after(0)
    evaluate = evaluate_qa if family == "qa" else evaluate_longbench
    return evaluate(
        trainer.model,
        tok,
        rows,
        cfg.generation,
        source=str(data),
        hook=TestTimeTraining(trainer, method, cfg),
    )
