"""`refine data <what>`: build the tokenizer, corpus and evaluation files; outputs are written atomically."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def _cfg(args, cls):
    from refine.config import from_dict, load_cfg

    return from_dict(cls, load_cfg(args.cfg), where=f"refine data {args.what} --cfg")


def _tokenizer(args):
    from refine.data.tokenizer import load_tokenizer

    if not args.tokenizer:
        raise ValueError(f"refine data {args.what}: this source needs --tokenizer")
    return load_tokenizer(args.tokenizer)


def _check_source(args, source: str, allowed: tuple[str, ...]) -> None:
    if source not in allowed:
        raise ValueError(f"refine data {args.what}: unknown source {source!r}; choose from {list(allowed)}")


def run_tokenizer(args) -> int:
    from refine.data.io import read_table
    from refine.data.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer

    cfg = _cfg(args, TokenizerConfig)
    texts = [t for path in args.corpus for t in read_table(path, [cfg.text_column])[cfg.text_column]]
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.min_frequency)
    save_tokenizer(tokenizer, args.out)
    log.info("tokenizer: %d tokens from %d documents -> %s", len(tokenizer), len(texts), args.out)
    return 0


def run_corpus(args) -> int:
    from refine.data.corpus import CorpusConfig, hub_corpus, synthetic_corpus
    from refine.data.io import write_table

    cfg = _cfg(args, CorpusConfig)
    _check_source(args, cfg.source, ("synthetic", "hub"))
    outputs = {args.out: (cfg.num_train, cfg.seed)}
    if args.val_out:
        outputs[args.val_out] = (cfg.num_val, cfg.val_seed)
    if cfg.source == "hub":  # one stream, split in order: train first, then validation
        docs = hub_corpus(
            _tokenizer(args),
            cfg.num_train + cfg.num_val,
            cfg.length,
            repo=cfg.hub_repo,
            text_column=cfg.text_column,
        )
        frames = {args.out: docs.iloc[: cfg.num_train], args.val_out: docs.iloc[cfg.num_train :]}
    else:
        tokenizer = _tokenizer(args) if args.tokenizer else None  # none: documents sized in words
        frames = {
            path: synthetic_corpus(
                n,
                seed,
                tokenizer=tokenizer,
                length=cfg.length,
                min_length=cfg.min_length,
                n_words=cfg.n_words,
                style_weights=cfg.style_weights,
            )
            for path, (n, seed) in outputs.items()
        }
    for path in outputs:
        write_table(frames[path].reset_index(drop=True), path)
        log.info("corpus: %d documents -> %s", len(frames[path]), path)
    return 0


def run_niah(args) -> int:
    from refine.data.io import write_table
    from refine.data.niah import NiahConfig, default_essay, essay_words, generate_niah

    cfg = _cfg(args, NiahConfig)
    tokenizer = _tokenizer(args)
    if args.essay:
        essay = essay_words(Path(args.essay).read_text(encoding="utf-8"))
    else:
        essay = default_essay(cfg.essay_seed, cfg.essay_words)
    for task in cfg.tasks:
        for length in cfg.lengths:
            rows = generate_niah(
                task,
                tokenizer,
                length,
                cfg.num_samples,
                essay=essay,
                seed=cfg.seed,
                tokens_to_generate=cfg.tokens_to_generate,
            )
            write_table(rows, Path(args.out) / f"{task}_{length}.jsonl")
    log.info("niah: %s x %s x %d samples -> %s", cfg.tasks, cfg.lengths, cfg.num_samples, args.out)
    return 0


def run_qa(args) -> int:
    from refine.atomic import atomic_path
    from refine.data.io import write_table
    from refine.data.qa import QAConfig, generate_qa, hub_pool, load_ruler_qa, ruler_qa_file

    cfg = _cfg(args, QAConfig)
    splits = {"train": cfg.train_samples, "test": cfg.test_samples}
    sources = {split: cfg.split_source(split) for split in splits}
    if "local" in sources.values() and not cfg.local_dir:
        raise ValueError("refine data qa: source 'local' needs local_dir")
    tokenizer = _tokenizer(args) if set(sources.values()) - {"local"} else None
    out = Path(args.out)
    for task in cfg.tasks:
        pool = hub_pool(task, cfg.hub_revision, cfg.hub_files) if "hub" in sources.values() else None
        for length in cfg.lengths:
            for split, n in splits.items():
                dest = out / f"{task}_{length}_{split}.parquet"
                if sources[split] == "local":  # ReFINE's file for `model` (validated, then copied)
                    src = ruler_qa_file(cfg.local_dir, task, cfg.model, length, f"{n}_{split}")
                    load_ruler_qa(src)
                    with atomic_path(dest) as tmp:
                        shutil.copyfile(src, tmp)
                    continue
                hub = sources[split] == "hub"
                first = cfg.test_samples if hub and split == "train" else 0  # hub: test first, train after it
                frame = generate_qa(
                    task, tokenizer, length, n, seed=cfg.seed, split=split, answer_reserve=cfg.answer_reserve,
                    pool=pool if hub else None, first=first,
                )  # fmt: skip
                write_table(frame, dest)
    log.info("qa (%s): %s x %s -> %s", sources, cfg.tasks, cfg.lengths, out)
    return 0


def run_longbench(args) -> int:
    from refine.data.io import write_table
    from refine.data.longbench import (
        COLUMNS,
        LongBenchConfig,
        archive_examples,
        build_task,
        download_archive,
        evaluated_count,
        load_longbench,
    )

    cfg = _cfg(args, LongBenchConfig)
    source = cfg.resolved_source()
    if source == "none":
        raise ValueError("refine data longbench: source 'none' builds nothing")
    if source == "local":
        if not cfg.local_dir or not Path(cfg.local_dir).is_dir():
            raise FileNotFoundError(
                f"refine data longbench: local_dir {cfg.local_dir!r} is not a directory; "
                "set it to ReFINE's data/longbench or use source 'hub' (or 'auto')"
            )
        frames = load_longbench(cfg.local_dir, cfg.tasks, cfg.max_length)
    else:
        tokenizer = _tokenizer(args)
        archive = args.archive or download_archive(cfg.hub_repo, cfg.hub_revision, Path(args.out) / "hub.zip")
        frames = {t: build_task(archive_examples(archive, t), t, tokenizer, cfg.max_length) for t in cfg.tasks}
    if cfg.max_examples:
        frames = {task: frame.iloc[: cfg.max_examples] for task, frame in frames.items()}
    out = Path(args.out)
    for task, frame in frames.items():
        write_table(frame[list(COLUMNS)], out / f"{task}.parquet")  # one layout whatever the source
    summary = [{"task": t, "rows": len(f), "evaluated": evaluated_count(len(f))} for t, f in frames.items()]
    write_table(summary, out / "summary.jsonl")
    log.info("longbench (%s): %s", source, json.dumps(summary))
    return 0


def run_longbench_download(args) -> int:
    """The hub archive of `longbench.hub_repo` at `hub_revision` -> --out (`--check`: only that it is reachable)."""
    from refine.data.longbench import LongBenchConfig, check_archive, download_archive

    cfg = _cfg(args, LongBenchConfig)
    check_archive(cfg.hub_repo, cfg.hub_revision)
    if not args.check:
        download_archive(cfg.hub_repo, cfg.hub_revision, args.out)
        log.info("longbench archive %s@%s -> %s", cfg.hub_repo, cfg.hub_revision, args.out)
    return 0


def run_checkpoint(args) -> int:
    """Download a hub checkpoint (weights, config, tokenizer) at --revision into --out; the paper config's base
    models. The revision is resolved to its commit first and that commit is downloaded and recorded in
    `--out/refine_source.json`; a branch name is followed, with a warning naming the commit to pin."""
    import re

    from huggingface_hub import HfApi, snapshot_download

    from refine.atomic import atomic_path

    commit = HfApi().model_info(args.repo, revision=args.revision).sha
    if not re.fullmatch(r"[0-9a-f]{40}", args.revision):
        log.warning(
            "checkpoint %s: revision %r is not a commit; pin base.revision to %s", args.repo, args.revision, commit
        )
    with atomic_path(args.out) as tmp:
        snapshot_download(repo_id=args.repo, revision=commit, local_dir=tmp)
        source = {"repo": args.repo, "revision": args.revision, "commit": commit}
        (tmp / "refine_source.json").write_text(json.dumps(source) + "\n")
    log.info("checkpoint %s@%s -> %s", args.repo, commit, args.out)
    return 0


COMMANDS = {
    "tokenizer": (run_tokenizer, "train the byte-level BPE on corpus files -> a tokenizer directory"),
    "corpus": (run_corpus, "synthetic (or hub) training and validation documents -> parquet/jsonl"),
    "niah": (run_niah, "RULER NIAH jsonl files, one per task and length"),
    "qa": (run_qa, "RULER-QA parquet files (synthetic train/test, or ReFINE's local test files)"),
    "longbench": (run_longbench, "validate/copy ReFINE's LongBench files, or build them from the hub archive"),
    "longbench-download": (run_longbench_download, "download LongBench's hub archive at the pinned revision"),
    "checkpoint": (run_checkpoint, "download a hub checkpoint (paper config) into a directory"),
}


def add_parser(subparsers) -> None:
    """Register `refine data <what>`."""
    group = subparsers.add_parser("data", help="build tokenizer, corpus and evaluation data")
    whats = group.add_subparsers(dest="what", required=True, metavar="<what>")
    for name, (func, help_text) in COMMANDS.items():
        p = whats.add_parser(name, help=help_text)
        p.add_argument("--cfg", default=None, help="JSON object or YAML/JSON file with this section's fields")
        p.add_argument("--out", required=True, help="output file (corpus) or directory")
        if name == "checkpoint":
            p.add_argument("--repo", required=True, help="hub id, e.g. fla-hub/delta_net-1.3B-100B")
            p.add_argument("--revision", default="main", help="commit to download (a branch name is followed)")
        elif name == "tokenizer":
            p.add_argument("--corpus", nargs="+", required=True, help="parquet/jsonl files with a text column")
        elif name == "longbench-download":
            p.add_argument("--check", action="store_true", help="only check that the archive can be had; no download")
        else:
            p.add_argument("--tokenizer", default=None, help="tokenizer directory (or hub id)")
        if name == "corpus":
            p.add_argument("--val-out", default=None, help="validation documents (parquet/jsonl)")
        if name == "longbench":
            p.add_argument("--archive", default=None, help="the hub archive (source hub; default: download it)")
        if name == "niah":
            p.add_argument("--essay", default=None, help="text file for the essay haystack (default: synthetic)")
        p.set_defaults(func=func)
