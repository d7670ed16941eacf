"""`refine evaluate {niah,qa,longbench,short}`: evaluate one checkpoint on a list of (task, length) cells, writing
one record per cell as each finishes (docs/design.md). The model is loaded once; NIAH cells share one
lm-eval run, as do short-context cells. Cell options: `refine.commands.cells`; test-time training is
`refine train --stage ttt`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from refine.commands.cells import add_cell_args, cells, identity
from refine.logs import logged


def resolve_device(name: str) -> str:
    """`auto` -> cuda when available, else cpu."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def run(args: argparse.Namespace) -> int:
    from refine.checkpoint import load_pretrained, run_info
    from refine.config import from_dict, load_cfg
    from refine.evaluate.cells import prompt_budget, record_fields
    from refine.evaluate.records import config_hash, write_record

    todo = cells(args)
    device = resolve_device(args.device)
    model_run = run_info(args.model)

    def write(cell, result: dict, cfg) -> None:
        result.pop("task", None)  # the record's task is the cell's
        config = {"family": args.family, "data": Path(cell.data).name if cell.data else None, "dtype": args.dtype,
                  **dataclasses.asdict(cfg)}  # fmt: skip
        fields = record_fields(**identity(args), cell=cell, family=args.family, model_run=model_run)
        write_record(cell.out, config_hash=config_hash(config), **(result | fields))

    if args.family in ("niah", "short"):
        lmeval = _niah if args.family == "niah" else _short
        results, cfg = lmeval(args, todo, device, load_cfg(args.cfg))
        for cell, result in zip(todo, results):
            write(cell, result, cfg)
        return 0
    from refine.data.io import read_rows
    from refine.evaluate.generation import GenerationConfig
    from refine.evaluate.runner import evaluate_longbench, evaluate_qa

    cfg = from_dict(GenerationConfig, load_cfg(args.cfg), where="--cfg")
    model, tokenizer = load_pretrained(args.model, device, args.dtype)
    evaluate = evaluate_qa if args.family == "qa" else evaluate_longbench
    for cell in logged(todo, f"evaluate {args.family} {args.model}"):  # each record written as its cell is done
        write(cell, evaluate(model, tokenizer, read_rows(cell.data), prompt_budget(cfg, cell.length),
                             source=str(cell.data)), cfg)  # fmt: skip
    return 0


def _niah(args, todo: list, device: str, cfg_dict: dict):
    """All NIAH cells in one lm-eval run (local jsonl files, or lm-eval's built-in tasks)."""
    from refine.config import from_dict
    from refine.evaluate.lmeval.harness import NiahEvalConfig, run_builtin_niah, run_niah

    cfg = from_dict(NiahEvalConfig, cfg_dict, where="--cfg")
    if not cfg.builtin and any(c.data is None for c in todo):
        raise ValueError("refine evaluate niah: --data is required unless the config sets builtin: true")
    max_length = cfg.max_length or max(c.length for c in todo) + cfg.max_gen_toks
    common = {"device": device, "dtype": args.dtype, "batch_size": cfg.batch_size, "limit": cfg.limit}
    tasks = sorted({c.task for c in todo})
    if cfg.builtin:  # the built-in tasks fix max_gen_toks (128) in their YAML
        lengths = sorted({c.length for c in todo})
        scores = run_builtin_niah(args.model, tasks, lengths, max_length, **common)
    else:
        files = {t: sorted({c.data for c in todo if c.task == t}) for t in tasks}
        scores = run_niah(args.model, files, max_length, max_gen_toks=cfg.max_gen_toks, **common)
    results = []
    for c in todo:
        if c.length not in scores[c.task]:
            raise ValueError(
                f"{c.data}: no {c.task} documents with max_length {c.length} (found {sorted(scores[c.task])})"
            )
        results.append({"family": "niah", "metric": "string_match_all", **scores[c.task][c.length]})
    return results, cfg


def _short(args, todo: list, device: str, cfg_dict: dict):
    """All short-context cells (`{lm-eval task}-{metric}`) in one lm-eval run; local tasks read --data (a corpus
    parquet file, the same for every cell)."""
    from refine.config import from_dict
    from refine.evaluate.lmeval.short import ShortConfig, run_short

    cfg = from_dict(ShortConfig, cfg_dict, where="--cfg")
    corpus = sorted({c.data for c in todo if c.data})
    if len(corpus) > 1:
        raise ValueError(f"refine evaluate short: one --data corpus for all cells, got {corpus}")
    max_length = cfg.max_length or max(c.length for c in todo)
    scores = run_short(args.model, [c.task for c in todo], max_length, corpus=corpus[0] if corpus else None,
                       cfg=cfg, device=device, dtype=args.dtype)  # fmt: skip
    return [{"family": "short", **scores[c.task]} for c in todo], cfg


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on (task, length) cells, one record each")
    families = p.add_subparsers(dest="family", required=True, metavar="{niah,qa,longbench,short}")
    helps = {
        "niah": "RULER NIAH through lm-eval (local jsonl, or lm-eval's tasks with builtin: true)",
        "qa": "RULER SQuAD/HotpotQA parquet (string_match_part of the first line)",
        "longbench": "LongBench task parquet files (ReFINE's scoring)",
        "short": "Table E.1's lm-eval tasks, cells {task}-{metric} (local tasks: --data is a corpus parquet)",
    }
    for family, text in helps.items():
        f = families.add_parser(family, help=text, description=__doc__)
        f.add_argument("--model", required=True, help="checkpoint folder")
        f.add_argument(
            "--cfg",
            default=None,
            help="JSON object or YAML/JSON file (a NiahEvalConfig, ShortConfig or GenerationConfig)",
        )
        f.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
        f.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
        add_cell_args(f, data_required=family not in ("niah", "short"))
        f.set_defaults(func=run)
