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

from refine.checkpoint import load_pretrained, stamp_run
from refine.data.batching import encode_prompt_answer, encode_prompts
from refine.data.io import read_column, read_rows
from refine.data.tokenizer import load_tokenizer
from refine.evaluate.generation import Batch
from refine.experiment import POST_METHODS, refine_fields, resolve_method
from refine.rl.config import RefineConfig
from refine.rl.step import refine_update
from refine.train.config import MidConfig, PostConfig, PretrainConfig, RunConfig, TTTConfig
from refine.train.data import document_batch, encode_documents, encode_texts, text_batch
from refine.train.distributed import Dist, init_distributed
from refine.train.state import full_weights, save_checkpoint
from refine.train.trainer import BatchPlan, Trainer
from refine.train.updates import TextUpdate, nested_update, ntp_validation, per_rank, sft_update
from refine.version import code_version


def seed_everything(seed: int) -> None:
    """Same seed on every rank, so models built from scratch start identical."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_fields(identity: dict | None, refine: RefineConfig | None) -> dict:
    """A run's identity (`arch` and `refine.experiment.ModelId.fields`) with its resolved REFINE settings."""
    return {**(identity or {}), **refine_fields(refine)}


def _trainer(
    model, cfg: RunConfig, dist: Dist, seed: int, steps: int, desc: str, metrics, state=None, run=None, inputs=None
):
    """The stage's Trainer; `run` (run_fields) is stamped into the checkpoint config and, with the code version
    (refine.version.code_version), into every metrics row; `inputs` (the files the weights depend on) enter the
    resume fingerprint."""
    if run is not None:
        stamp_run(model, run)
    t = Trainer(model, cfg, dist, seed=seed, total_steps=steps, metrics=metrics, state=state, desc=desc, inputs=inputs)
    t.metrics.fields = {**code_version(), **(run or {})}
    return t


def _finish(trainer: Trainer, tokenizer, out: Path | str | None) -> None:
    weights = full_weights(trainer.model) if out else None  # every rank: gathers a sharded model's weights
    if out and trainer.dist.main:
        save_checkpoint(trainer.model, tokenizer, out, weights)
    trainer.dist.barrier()
    if not trainer.cfg.keep_state:  # the outputs are written: nothing left to resume
        trainer.state.remove()


def pretrain(
    cfg: PretrainConfig,
    *,
    arch: str,
    tokenizer,
    data,
    base=None,
    out=None,
    metrics=None,
    state=None,
    seed=0,
    dist=None,
    identity=None,
):
    """NTP on the tiny base models' documents: one document per row (at most `max_length` tokens), loss on
    every token of prose and on the answer of task documents, each document weighing the same (docs/design.md,
    "Retrieval first"). From scratch, or from the checkpoint `base` (the long phase of a length curriculum,
    `pretrain_long`; `cfg.model` must then be empty). `identity` (each stage): the run's `arch` and
    `refine.experiment.ModelId.fields`, for the checkpoint and metrics."""
    from transformers import AutoModelForCausalLM

    from refine.models.tiny import tiny_config

    dist = dist or init_distributed()
    tok = load_tokenizer(tokenizer)
    seed_everything(seed)
    if base is None:
        config = tiny_config(arch, len(tok), **cfg.model)
        config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
        model = AutoModelForCausalLM.from_config(config)
    elif cfg.model:
        raise ValueError(
            f"pretrain from {base}: the model is the checkpoint's; model overrides {cfg.model} do not apply"
        )
    else:
        model = load_pretrained(base)[0]
    rows = encode_documents(data, tok, cfg.max_length)
    plan = BatchPlan.for_stage(len(rows), cfg, seed)
    t = _trainer(
        model,
        cfg,
        dist,
        seed,
        plan.steps,
        f"pretrain {arch}",
        metrics,
        state,
        run_fields(identity, None),
        {"tokenizer": tokenizer, "data": data, "base": base},
    )
    t.fit(
        plan,
        lambda idx: document_batch([rows[i] for i in idx], tok.pad_token_id),
        lambda batch: sft_update(t.model, batch, cfg.micro_batch_size, 1, t.opt, per_document=True),
        save_every=cfg.save_every,
    )
    _finish(t, tok, out)
    return t


def mid(
    cfg: MidConfig,
    *,
    method: str,
    base,
    data,
    val_data=None,
    out=None,
    metrics=None,
    state=None,
    seed=0,
    dist=None,
    identity=None,
):
    """Mid-training on long documents (spec 5.1): NTP-only SFT or REFINE (or an ablation), validated on
    held-out documents every `val_every` steps."""
    dist = dist or init_distributed()
    method, refine = resolve_method(method, cfg.refine)
    update = TextUpdate(method, per_rank(refine, dist.world), cfg.matched_steps)
    model, tok = load_pretrained(base)
    seed_everything(seed)
    docs = encode_texts(data, tok, cfg.max_length)
    plan = BatchPlan.for_stage(len(docs), cfg, seed)
    run = run_fields(identity, refine if method == "refine" else None)
    inputs = {"base": base, "data": data, "val_data": val_data}
    resolved = dataclasses.replace(cfg, refine=refine)  # an ablation's REFINE settings enter the fingerprint
    t = _trainer(model, resolved, dist, seed, plan.steps, f"mid {method}", metrics, state, run, inputs)
    validate = None
    if val_data:
        val_docs = encode_texts(val_data, tok, cfg.max_length)[: cfg.val_max_docs or None]
        if len(val_docs) < dist.world:
            raise ValueError(f"{val_data}: {len(val_docs)} validation documents for {dist.world} ranks")
        if cfg.strategy == "fsdp":  # sharded forwards are collectives: every rank validates as many documents
            val_docs = val_docs[: len(val_docs) - len(val_docs) % dist.world]
        validate = _mid_validation(t, val_docs[dist.rank :: dist.world], cfg, refine, tok.pad_token_id)
    t.fit(
        plan,
        lambda idx: text_batch([docs[i] for i in idx], tok.pad_token_id, cfg.max_length),
        lambda batch: update(t, batch),
        validate=validate,
        val_every=cfg.val_every,
        val_before=cfg.val_before_train,
        save_every=cfg.save_every,
    )
    _finish(t, tok, out)
    return t


def _mid_validation(t: Trainer, docs: list[list[int]], cfg: MidConfig, refine: RefineConfig, pad: int):
    """Validation on held-out documents (spec 5.1): NTP loss (mean over micro-batches), sampled-token
    accuracy and, with `val_rewards`, the reward statistics of REFINE rollouts (no update) on them."""
    size = max(1, cfg.val_batch_size // t.dist.world)
    rollouts_only = dataclasses.replace(refine, mini_batch_size=None, slices=None)  # one no-op "update", no_grad

    def validate(generator: torch.Generator) -> dict:
        sums: dict[str, float] = defaultdict(float)
        for start in range(0, len(docs), size):
            batch = text_batch(docs[start : start + size], pad, cfg.max_length)
            for key, value in ntp_validation(t.model, batch, cfg.micro_batch_size, generator).items():
                sums[key] += value
            if cfg.val_rewards:
                ids, mask = batch["input_ids"].to(t.dist.device), batch["attention_mask"].to(t.dist.device)
                with torch.no_grad():
                    out = refine_update(t.model, ids, mask, rollouts_only, lambda loss: {}, generator)
                for key in (k for k in out if k.startswith("reward_")):
                    sums[key] += out[key]
                sums["batches"] += 1
        keys = sorted(sums)
        total = dict(zip(keys, t.dist.all_sum([sums[k] for k in keys])))
        row = {
            "loss": total["loss_sum"] / total["micro_batches"],
            "ntp_acc": total["hits"] / total["positions"],
        }
        row.update({k: v / total["batches"] for k, v in total.items() if k.startswith("reward_")})
        return row

    return validate


def post(
    cfg: PostConfig, *, method: str, base, data, out=None, metrics=None, state=None, seed=0, dist=None, identity=None
):
    """Post-training on one task x length (spec 5.2) from the REFINE mid-trained model: `sft` (answer-only
    SFT), `nested_sft` or `nested_refine` (inner update on the prompt, then the answer step)."""
    if method not in POST_METHODS:
        raise ValueError(f"--stage post: --method must be one of {POST_METHODS}, got {method!r}")
    dist = dist or init_distributed()
    inner_method = method.removeprefix("nested_")
    inner = TextUpdate(inner_method, per_rank(cfg.refine, dist.world), cfg.matched_steps) if method != "sft" else None
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
    run = run_fields(identity, cfg.refine if method == "nested_refine" else None)
    inputs = {"base": base, "data": data}
    t = _trainer(model, cfg, dist, seed, plan.steps, f"post {method}", metrics, state, run, inputs)
    t.fit(plan, make_batch, lambda batch: nested_update(t, batch, inner), save_every=cfg.save_every)
    _finish(t, tok, out)
    return t


class TestTimeTraining:
    """The evaluation runner's `before_batch` hook (spec 5.3): adapt on the batch's prompts, in file order.

    `update` is NTP-only (`sft`, spec 4.10) or REFINE with the configured (binary) reward; the runner then
    generates greedily with the adapted weights. `reset: cumulative` (the official code, spec 10.3) keeps
    weights and AdamW moments across batches; `per_batch` restores both before every batch.
    """

    __test__ = False  # not a pytest class

    def __init__(self, trainer: Trainer, update: TextUpdate, reset: str):
        if reset not in ("cumulative", "per_batch"):
            raise ValueError(f"reset: unknown {reset!r} (cumulative | per_batch)")
        self.trainer, self.update = trainer, update
        self.initial = None
        if reset == "per_batch":
            self.initial = copy.deepcopy((trainer.model.state_dict(), trainer.optimizer.state_dict()))

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
        taken, skipped = t.opt.taken, t.opt.skipped
        with t.autocast():
            out = self.update(t, part)
        t.step += 1
        t.log_row("train", t.guard.record(t.step, t.opt.taken - taken, t.opt.skipped - skipped, t.reduce(out)))
        t.guard.check(t.step)


def ttt(
    cfg: TTTConfig, *, method: str, base, data, family: str, metrics=None, seed=0, dist=None, identity=None
) -> dict:
    """Test-time training over one evaluation file (spec 5.3); returns the runner's scoring result.

    The file is read in order, in batches of `generation.batch_size` with drop_last; each batch is adapted
    on (`TestTimeTraining`) and then answered greedily by `refine.evaluate.runner`.
    """
    from refine.evaluate.runner import evaluate_longbench, evaluate_qa

    if family not in ("qa", "longbench"):
        raise ValueError(f"--family must be qa or longbench for test-time training, got {family!r}")
    dist = dist or init_distributed()
    method, refine = resolve_method(method, cfg.refine)
    update = TextUpdate(method, per_rank(refine, dist.world), cfg.matched_steps)
    model, tok = load_pretrained(base)
    seed_everything(seed)
    rows = read_rows(data)
    run = {**(identity or {}), **refine_fields(refine if method == "refine" else None, prefix="ttt_refine_")}
    t = _trainer(model, cfg, dist, seed, len(rows) // cfg.generation.batch_size, f"ttt {method}", metrics, run=run)
    t.metrics.truncate_after(0)
    evaluate = evaluate_qa if family == "qa" else evaluate_longbench
    hook = TestTimeTraining(t, update, cfg.reset)
    return evaluate(t.model, tok, rows, cfg.generation, source=str(data), hook=hook)
