"""The evaluation-cell options `refine evaluate` and `refine train --stage ttt` share.

A job evaluates one model (`--experiment/--arch/--model-name`: the records' identity, `refine.experiment`)
on parallel lists `--task/--length/--length-label/--data/--out`, one value per cell or one shared value.
"""

from __future__ import annotations

import argparse


def add_cell_args(p, *, required: bool = True, data_required: bool = True) -> None:
    """Record identity (model-level scalars) and the per-cell parallel lists."""
    p.add_argument("--experiment", default="default")
    p.add_argument("--arch", required=required, help="deltanet | lact")
    p.add_argument(
        "--model-name", required=required, help="base, mid-{method}-s{seed} or post-{task}-{length}-{method}-s{seed}"
    )
    p.add_argument("--task", nargs="+", required=required, help="e.g. niah_single_1, ruler_squadqa, qasper")
    p.add_argument("--length", nargs="+", type=int, required=required, help="sequence length in tokens")
    p.add_argument("--length-label", nargs="+", required=required, help="the paper column, e.g. 4K")
    p.add_argument("--data", nargs="+", required=data_required, help="data file per cell (.jsonl niah, else .parquet)")
    p.add_argument("--out", nargs="+", required=required, help="record path (.json) per cell")


def cells(args: argparse.Namespace):
    """The `refine.evaluate.cells.Cell` list of the parsed options."""
    from refine.evaluate.cells import make_cells

    return make_cells(args.task, args.length, args.length_label, args.data, args.out)


def identity(args: argparse.Namespace) -> dict:
    """The keyword arguments of `refine.evaluate.cells.record_fields` that the options fix."""
    return {"experiment": args.experiment, "arch": args.arch, "model": args.model_name}
