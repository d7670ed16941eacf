"""`refine train --stage {pretrain,mid,post,ttt}`: one training stage (spec 5), or test-time training inside
an evaluation, writing an HF checkpoint (TTT: an evaluation record). Runs the same under `torchrun`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

STAGES = ("pretrain", "mid", "post", "ttt")
NEEDS = {  # required options per stage (ttt: plus the record identity)
    "pretrain": ("arch", "tokenizer", "data", "out"),
    "mid": ("method", "base", "data", "out"),
    "post": ("method", "base", "data", "out"),
    "ttt": (
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
    ),
}


def _record_parent() -> argparse.ArgumentParser:
    """`refine evaluate`'s record-identity options, optional here (only `--stage ttt` needs them).

    Their `--seed` is also the training seed (default 0; for ttt: the model name's seed), and `--length`
    (post, ttt) sets the prompt budget to length minus the answer budget (spec 5.2-5.3: L - 32).
    """
    from refine.commands.evaluate import add_record_args

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("evaluation record (--stage ttt)")
    add_record_args(group)
    for action in group._group_actions:
        action.required = False
        if action.dest == "ttt":  # the record's ttt is --method here
            action.help = argparse.SUPPRESS
    return parent


def stage_config(args: argparse.Namespace):
    """The stage's config from --cfg; --length, when given, sets the post / ttt prompt budget."""
    from refine.config import load_cfg
    from refine.train.config import STAGE_CONFIGS

    cfg = STAGE_CONFIGS[args.stage].from_dict(load_cfg(args.cfg))
    if args.length and args.stage == "post":
        cfg = dataclasses.replace(cfg, max_length=args.length - cfg.max_answer_length)
    if args.length and args.stage == "ttt":
        budget = args.length - cfg.generation.max_new_tokens
        cfg = dataclasses.replace(
            cfg, generation=dataclasses.replace(cfg.generation, max_prompt_length=budget)
        )
    return cfg


def run(args: argparse.Namespace) -> int:
    from refine.train import stages
    from refine.train.distributed import close_distributed, init_distributed

    missing = [f"--{n.replace('_', '-')}" for n in NEEDS[args.stage] if getattr(args, n) in (None, "")]
    if missing:
        raise ValueError(f"--stage {args.stage} needs {', '.join(missing)}")
    cfg = stage_config(args)
    dist = init_distributed()
    common = {"data": args.data, "metrics": args.metrics, "seed": args.seed or 0, "dist": dist}
    try:
        if args.stage == "pretrain":
            stages.pretrain(
                cfg, arch=args.arch, tokenizer=args.tokenizer, out=args.out, state=args.state, **common
            )
        elif args.stage == "mid":
            stages.mid(
                cfg,
                method=args.method,
                base=args.base,
                val_data=args.val_data,
                out=args.out,
                state=args.state,
                **common,
            )
        elif args.stage == "post":
            stages.post(cfg, method=args.method, base=args.base, out=args.out, state=args.state, **common)
        else:
            _ttt(args, cfg, common)
    finally:
        close_distributed()
    return 0


def _ttt(args: argparse.Namespace, cfg, common: dict) -> None:
    """Adapt-then-generate over the evaluation file and write its record (the record's `ttt` = --method)."""
    from refine.commands.evaluate import record_fields
    from refine.evaluate.records import config_hash, write_record
    from refine.train import stages

    args.ttt = args.method
    fields = record_fields(args, args.family)
    result = stages.ttt(
        cfg, method=args.method, base=args.base, family=args.family, **{**common, "seed": fields["seed"]}
    )
    if common["dist"].main:
        config = {
            "family": args.family,
            "data": Path(args.data).name,
            "ttt": args.method,
            "seed": fields["seed"],
            **dataclasses.asdict(cfg),
        }
        write_record(args.out, config_hash=config_hash(config), **{**result, **fields})  # task: --task


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        parents=[_record_parent()],
        description=__doc__,
        help="run one training stage (pretrain, mid, post) or test-time training",
    )
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument(
        "--method",
        help="mid: sft|refine|refine_<variant>; post: sft|nested_sft|nested_refine; "
        "ttt: sft|refine|refine_<variant>",
    )
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
