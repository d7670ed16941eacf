"""`refine train --stage {pretrain,mid,post,ttt}`: one training stage (spec 5), or test-time training inside
an evaluation, writing an HF checkpoint (TTT: one evaluation record per cell). Runs the same under `torchrun`.

Test-time training takes `refine evaluate`'s cell options (`refine.commands.cells`) and adapts a fresh copy of
`--base` on each evaluation file (spec 5.3: each file is run from the checkpoint). `--arch/--model-name` name
the run (`refine.experiment`): mid / post take their method and seed from the name unless given.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from refine.commands.cells import add_cell_args, cells, identity
from refine.logs import logged

STAGES = ("pretrain", "mid", "post", "ttt")
NEEDS = {  # required options per stage (ttt: plus the record identity)
    "pretrain": ("arch", "tokenizer", "data", "out"),
    "mid": ("method", "base", "data", "out"),  # --method / --seed: given, or from --model-name
    "post": ("method", "base", "data", "out"),
    "ttt": ("method", "base", "data", "out", "family", "arch", "model_name", "task", "length", "length_label"),
}


def stage_config(args: argparse.Namespace, length: int | None = None):
    """The stage's config from --cfg, sized for a cell's `length` (post / ttt prompt budgets, spec 5.2-5.3)."""
    from refine.config import load_cfg
    from refine.train.config import STAGE_CONFIGS

    cfg = STAGE_CONFIGS[args.stage].from_dict(load_cfg(args.cfg))
    return cfg.for_length(length) if length and args.stage in ("post", "ttt") else cfg


def run_identity(args: argparse.Namespace) -> dict | None:
    """`--arch` and the fields of `--model-name` (None without a name); fills --method / --seed from the name
    and rejects a name that contradicts them."""
    from refine.experiment import parse_model

    if not args.model_name or args.stage == "ttt":
        return None
    model = parse_model(args.model_name)
    for option, value in (("method", model.method), ("seed", model.seed)):
        given = getattr(args, option)
        if given not in (None, value):
            raise ValueError(f"--{option} {given} contradicts --model-name {args.model_name}")
        setattr(args, option, value)
    return {"arch": args.arch, **model.fields()}


def _single(args: argparse.Namespace, name: str):
    """The one value of a list option for the training stages."""
    values = getattr(args, name)
    if values is None or len(values) != 1:
        raise ValueError(f"--stage {args.stage}: --{name.replace('_', '-')} takes one value, got {values}")
    return values[0]


def run(args: argparse.Namespace) -> int:
    from refine.train import stages
    from refine.train.distributed import close_distributed, init_distributed

    run_id = run_identity(args)
    missing = [f"--{n.replace('_', '-')}" for n in NEEDS[args.stage] if getattr(args, n) in (None, "", [])]
    if missing:
        raise ValueError(f"--stage {args.stage} needs {', '.join(missing)}")
    if args.stage == "ttt":
        return _ttt(args)
    length = _single(args, "length") if args.length else None
    cfg = stage_config(args, length)
    dist = init_distributed()
    common = {"data": _single(args, "data"), "metrics": args.metrics, "seed": args.seed or 0, "dist": dist,
              "out": _single(args, "out"), "state": args.state, "identity": run_id}  # fmt: skip
    try:
        if args.stage == "pretrain":
            stages.pretrain(cfg, arch=args.arch, tokenizer=args.tokenizer, base=args.base, **common)
        elif args.stage == "mid":
            stages.mid(cfg, method=args.method, base=args.base, val_data=args.val_data, **common)
        else:
            stages.post(cfg, method=args.method, base=args.base, **common)
    finally:
        close_distributed()
    return 0


def _ttt(args: argparse.Namespace) -> int:
    """Adapt-then-generate over each cell's evaluation file; each record (its `ttt` = --method) is written as
    soon as its cell is done."""
    from refine.checkpoint import run_info
    from refine.evaluate.cells import record_fields
    from refine.evaluate.records import config_hash, write_record
    from refine.experiment import parse_model, resolve_method
    from refine.train import stages
    from refine.train.distributed import close_distributed, init_distributed

    model, model_run = parse_model(args.model_name), run_info(args.base)
    dist = init_distributed()
    try:
        for cell in logged(cells(args), f"ttt {args.method} {args.base}", enabled=dist.main):
            cfg = stage_config(args, cell.length)
            kind, refine = resolve_method(args.method, cfg.refine)
            fields = record_fields(**identity(args), cell=cell, family=args.family, ttt=args.method,
                                   model_run=model_run, ttt_run=refine if kind == "refine" else None)  # fmt: skip
            result = stages.ttt(cfg, method=args.method, base=args.base, data=cell.data, family=args.family,
                                metrics=args.metrics, seed=fields["seed"], dist=dist,
                                identity={"arch": args.arch, **model.fields(), "ttt": args.method})  # fmt: skip
            if dist.main:
                config = {"family": args.family, "data": Path(cell.data).name, "ttt": args.method,
                          "seed": fields["seed"], **dataclasses.asdict(cfg)}  # fmt: skip
                write_record(cell.out, config_hash=config_hash(config), **{**result, **fields})
    finally:
        close_distributed()
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", description=__doc__, help="run one training stage (pretrain, mid, post) or test-time training"
    )
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument(
        "--method",
        help="mid: sft|refine|refine_<variant>; post: sft|nested_sft|nested_refine; ttt: sft|refine|refine_<variant>",
    )
    p.add_argument("--cfg", help="the stage's config: a JSON object or a YAML/JSON file (refine.train.config)")
    p.add_argument("--base", help="input checkpoint directory (mid, post, ttt; pretrain: continue it)")
    p.add_argument("--tokenizer", help="tokenizer directory (pretrain)")
    p.add_argument("--val-data", help="held-out documents for mid-training validation")
    p.add_argument("--family", choices=["qa", "longbench"], help="evaluation family (ttt)")
    p.add_argument("--metrics", help="training metrics JSONL")
    p.add_argument("--state", help="resumable state directory, outside the declared outputs")
    p.add_argument("--seed", type=int, default=None, help="mid / post: default from --model-name, else 0")
    group = p.add_argument_group(
        "data, outputs and evaluation cells",
        "--data/--out: the corpus or QA file and the checkpoint directory (pretrain, mid, post), or one "
        "evaluation file and record per cell (ttt); --length: post's prompt budget (length - answer tokens)",
    )
    add_cell_args(group, required=False, data_required=False)
    p.set_defaults(func=run)
