"""The workflow config's cross-key rules (what JSON Schema cannot state) and each arch's pretraining corpus section.

The Snakefile imports this module at DAG build and no `refine` command does, so a change here reruns no job
(`refine.version.command_hash` covers the commands' imports alone). Standard library only.
"""

from __future__ import annotations

from typing import Any

TRAINED_STAGES = ("pretrain", "pretrain_long", "mid", "post")


def check_workflow_config(config: dict[str, Any]) -> None:
    """Cross-key rules of a schema-validated workflow config that JSON Schema cannot state; ValueError naming
    the key. Defaults come from the schema (workflow/schemas/config.schema.yaml), already filled in."""
    lengths, labels = config["lengths"], config["length_labels"]
    if len(labels) != len(lengths):
        raise ValueError(f"length_labels: {len(labels)} labels for {len(lengths)} lengths (one per length, in order)")
    for stage in TRAINED_STAGES:
        _check_batches(stage, config[stage], config[stage].get("batch_size"))
    corpus, mid_length = config["corpus"], config["mid"].get("max_length")
    if corpus.get("source", "synthetic") == "synthetic" and mid_length and corpus.get("length", 0) > mid_length:
        raise ValueError(
            f"corpus.length: {corpus['length']}-token documents exceed mid.max_length ({mid_length}); mid-training "
            "would cut their ends, where the synthetic documents' answers are"
        )
    for phase in ("pretrain", "pretrain_long"):
        long, pre_length = phase == "pretrain_long", config[phase].get("max_length")
        for arch in [None, *config["pretrain_corpus"].get("by_arch", {})]:
            pre_min = pretrain_corpus_section(config, arch, long).get("min_length")
            if pre_min and pre_length and pre_min > pre_length:
                key = f"pretrain_corpus.by_arch.{arch}" if arch else "pretrain_corpus"
                key = f"pretrain_long.corpus (over {key})" if long else key
                raise ValueError(
                    f"{key}.min_length: {pre_min} tokens exceed {phase}.max_length ({pre_length}), the length of "
                    "the pretraining documents"
                )
    _check_batches("ttt", config["ttt"], config["evaluation"].get("batch_size"), "evaluation.batch_size")
    stray = sorted(set(config["ablations"].get("seeds") or []) - set(config["mid_seeds"]))
    if stray:
        raise ValueError(f"ablations.seeds: {stray} not in mid_seeds {config['mid_seeds']} (variants pair with REFINE)")


def pretrain_corpus_section(config: dict[str, Any], arch: str | None, long: bool = False) -> dict[str, Any]:
    """The `pretrain_corpus` fields of `arch`'s base model: its `by_arch` entry over the shared ones (the shared
    ones alone for `arch` None); with `long`, the documents of its long phase: `pretrain_long.corpus` over those."""
    section = dict(config["pretrain_corpus"])
    section |= section.pop("by_arch", {}).get(arch, {})
    return section | config["pretrain_long"].get("corpus", {}) if long else section


def long_pretrain_archs(config: dict[str, Any]) -> list[str]:
    """The archs of `archs` whose base model has a long pretraining phase (`pretrain_long.archs`; tiny default
    only: `base.source` pretrain). An arch left out of `archs` is left out here too."""
    if config["base"]["source"] != "pretrain":
        return []
    return [arch for arch in config["archs"] if arch in config["pretrain_long"].get("archs", [])]


def _check_batches(stage: str, section: dict[str, Any], batch: int | None, batch_key: str = "") -> None:
    """micro_batch_size and refine.mini_batch_size fit in one batch (TTT: one generation batch)."""
    batch_key = batch_key or f"{stage}.batch_size"
    sizes = {"micro_batch_size": section.get("micro_batch_size"),
             "refine.mini_batch_size": section.get("refine", {}).get("mini_batch_size")}  # fmt: skip
    for key, size in sizes.items():
        if batch is not None and size is not None and size > batch:
            raise ValueError(f"{stage}.{key}: {size} sequences exceed {batch_key} ({batch})")
