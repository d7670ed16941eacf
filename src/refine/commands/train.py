"""`refine train --stage {pretrain,mid,post,ttt}`: one training stage (spec 5), or test-time training inside
an evaluation, writing an HF checkpoint (TTT: an evaluation record). Runs the same under `torchrun`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

STAGES = ("pretrain", "mid", "post", "ttt")


def _record_parent() -> argparse.ArgumentParser:
    """`refine evaluate`'s record-identity options, optional here (only `--stage ttt` needs them).

    Their `--seed` is also the training seed (default 0; for ttt: the model name's seed).
    """
    from refine.commands.evaluate import add_record_args

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("evaluation record (--stage ttt)")
    add_record_args(group)
    for action in group._group_actions:
        action.required = False
    return parent


def _require(args: argparse.Namespace, stage: str, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise ValueError(f"--stage {stage} needs {', '.join(missing)}")


def run(args: argparse.Namespace) -> int:
    from refine.config import load_cfg
    from refine.train import stages
    from refine.train.config import STAGE_CONFIGS
    from refine.train.distributed import close_distributed, init_distributed

    cfg = STAGE_CONFIGS[args.stage].from_dict(load_cfg(args.cfg))
    dist = init_distributed()
    common = {"metrics": args.metrics, "seed": args.seed if args.seed is not None else 0, "dist": dist}
    try:
        if args.stage == "pretrain":
            _require(args, "pretrain", "arch", "tokenizer", "data", "out")
            stages.pretrain(
                cfg,
                arch=args.arch,
                tokenizer=args.tokenizer,
                data=args.data,
                out=args.out,
                state=args.state,
                **common,
            )
        elif args.stage == "mid":
            _require(args, "mid", "method", "base", "data", "out")
            stages.mid(
                cfg,
                method=args.method,
                base=args.base,
                data=args.data,
                val_data=args.val_data,
                out=args.out,
                state=args.state,
                **common,
            )
        elif args.stage == "post":
            _require(args, "post", "method", "base", "data", "out")
            stages.post(
                cfg,
                method=args.method,
                base=args.base,
                data=args.data,
                out=args.out,
                state=args.state,
                **common,
            )
        else:
            _ttt(args, cfg, common)
    finally:
        close_distributed()
    return 0


def _ttt(args: argparse.Namespace, cfg, common: dict) -> None:
    """Adapt-then-generate over the evaluation file and write its record (`ttt` = --method)."""
    from refine.commands.evaluate import record_fields
    from refine.evaluate.records import config_hash, write_record
    from refine.train import stages

    _require(
        args,
        "ttt",
        "method",
        "base",
        "data",
        "out",
        "family",
        "arch",
        "model_name",
        "task",
        "length",
        "length_label",
    )
    args.ttt = args.method
    fields = record_fields(args, args.family)
    common = {**common, "seed": fields["seed"]}
    result = stages.ttt(cfg, method=args.method, base=args.base, data=args.data, family=args.family, **common)
    if common["dist"].main:
        config = {
            "family": args.family,
            "data": Path(args.data).name,
            "ttt": args.method,
            "seed": args.seed,
            **dataclasses.asdict(cfg),
        }
        write_record(args.out, config_hash=config_hash(config), **{**result, **fields})  # task: --task


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        parents=[_record_parent()],
        help="run one training stage (pretrain, mid, post) or test-time training",
        description=__doc__,
    )
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--method", help="mid: sft|refine; post: sft|nested_sft|nested_refine; ttt: sft|refine")
    p.add_argument(
        "--cfg", help="the stage's config: a JSON object or a YAML/JSON file (refine.train.config)"
    )
    p.add_argument("--base", help="input checkpoint directory (mid, post, ttt)")
    p.add_argument("--tokenizer", help="tokenizer directory (pretrain)")
    p.add_argument("--data", help="training corpus / QA file, or the evaluation file (ttt)")
    p.add_argument("--val-data", help="held-out documents for mid-training validation")
    p.add_argument("--family", choices=["qa", "longbench"], help="evaluation family (ttt)")
    p.add_argument("--out", help="output: HF checkpoint directory (ttt: the evaluation record .json)")
    p.add_argument("--metrics", help="training metrics JSONL")
    p.add_argument("--state", help="resumable state directory, outside the declared outputs")
    p.set_defaults(func=run)
