"""`refine evaluate {niah,qa,longbench}`: evaluate one checkpoint on a list of (task, length) cells, writing
one record per cell (docs/design.md). The model is loaded once; NIAH cells share one lm-eval run.

Cell arguments are parallel lists: `--task`, `--length`, `--length-label`, `--data` and `--out` each take one
value per cell, or a single value shared by every cell. Test-time training runs inside evaluation but belongs
to `refine train --stage ttt`, which reuses `add_cell_args` / `iter_cells` from here.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cell:
    """One evaluation: a task at a length, its data file and its record path."""

    task: str
    length: int
    length_label: str
    data: str | None
    out: str


def add_cell_args(p, *, required: bool = True, data_required: bool = True) -> None:
    """Record identity (model-level scalars) and the per-cell parallel lists."""
    p.add_argument("--experiment", default="default")
    p.add_argument("--arch", required=required, help="deltanet | lact")
    p.add_argument(
        "--model-name", required=required, help="base, mid-{method}-s{seed} or post-{task}-{length}-{method}-s{seed}"
    )
    p.add_argument("--seed", type=int, default=None, help="default: from --model-name (base: 0)")
    p.add_argument("--task", nargs="+", required=required, help="e.g. niah_single_1, ruler_squadqa, qasper")
    p.add_argument("--length", nargs="+", type=int, required=required, help="sequence length in tokens")
    p.add_argument("--length-label", nargs="+", required=required, help="the paper column, e.g. 4K")
    p.add_argument("--data", nargs="+", required=data_required, help="data file per cell (.jsonl niah, else .parquet)")
    p.add_argument("--out", nargs="+", required=required, help="record path (.json) per cell")


def iter_cells(args: argparse.Namespace) -> list[Cell]:
    """The cells of parallel list arguments; a one-element list is shared by every cell."""
    n = len(args.out)
    lists = {"task": args.task, "length": args.length, "length_label": args.length_label, "data": args.data or [None]}
    for name, values in lists.items():
        if len(values) not in (1, n):
            raise ValueError(f"--{name.replace('_', '-')}: {len(values)} values for {n} --out records (give 1 or {n})")
    return [
        Cell(out=out, **{k: v[i] if len(v) == n else v[0] for k, v in lists.items()}) for i, out in enumerate(args.out)
    ]


def record_fields(args: argparse.Namespace, cell: Cell, family: str, ttt: str = "none") -> dict:
    """Record identity fields of one cell; stage, method and default seed come from the model name."""
    from refine.evaluate.records import parse_model_name

    stage, method, seed = parse_model_name(args.model_name)
    return {
        "experiment": args.experiment,
        "arch": args.arch,
        "model": args.model_name,
        "stage": stage,
        "method": method,
        "seed": args.seed if args.seed is not None else (seed or 0),
        "family": family,
        "task": cell.task,
        "length": cell.length,
        "length_label": cell.length_label,
        "ttt": ttt,
    }


def load_model(model_dir: str | Path, device: str, dtype: str):
    """Our checkpoint and its tokenizer (pad = EOS when the tokenizer has none, spec §3.1)."""
    import torch
    from transformers import AutoModelForCausalLM

    import refine.models  # noqa: F401  (registers our model types)
    from refine.data.tokenizer import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device)
    return model, load_tokenizer(model_dir)


def prompt_budget(cfg, length: int):
    """The generation config of a cell: prompts get `length` minus the generated tokens (spec 5.3: L - 32)."""
    return dataclasses.replace(cfg, max_prompt_length=length - cfg.max_new_tokens)


def resolve_device(name: str) -> str:
    """`auto` -> cuda when available, else cpu."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def run(args: argparse.Namespace) -> int:
    from refine.config import from_dict, load_cfg
    from refine.evaluate.records import config_hash, write_record

    cells = iter_cells(args)
    device = resolve_device(args.device)
    if args.family == "niah":
        results, cfg = _niah(args, cells, device, load_cfg(args.cfg))
    else:
        from refine.evaluate.generation import GenerationConfig
        from refine.evaluate.runner import evaluate_longbench, evaluate_qa, load_rows

        cfg = from_dict(GenerationConfig, load_cfg(args.cfg), where="--cfg")
        model, tokenizer = load_model(args.model, device, args.dtype)
        evaluate = evaluate_qa if args.family == "qa" else evaluate_longbench
        results = [evaluate(model, tokenizer, load_rows(c.data), prompt_budget(cfg, c.length), source=str(c.data))
                   for c in cells]  # fmt: skip
    for cell, result in zip(cells, results):
        result.pop("task", None)  # the record's task is the cell's
        config = {"family": args.family, "data": Path(cell.data).name if cell.data else None, "dtype": args.dtype,
                  **dataclasses.asdict(cfg)}  # fmt: skip
        write_record(cell.out, config_hash=config_hash(config), **(result | record_fields(args, cell, args.family)))
    return 0


def _niah(args, cells: list[Cell], device: str, cfg_dict: dict):
    """All NIAH cells in one lm-eval run (local jsonl files, or lm-eval's built-in tasks)."""
    from refine.config import from_dict
    from refine.evaluate.lmeval.harness import NiahConfig, run_builtin_niah, run_niah

    cfg = from_dict(NiahConfig, cfg_dict, where="--cfg")
    if not cfg.builtin and any(c.data is None for c in cells):
        raise ValueError("refine evaluate niah: --data is required unless the config sets builtin: true")
    max_length = cfg.max_length or max(c.length for c in cells) + cfg.max_gen_toks
    common = {"device": device, "dtype": args.dtype, "batch_size": cfg.batch_size, "limit": cfg.limit}
    tasks = sorted({c.task for c in cells})
    if cfg.builtin:  # the built-in tasks fix max_gen_toks (128) in their YAML
        lengths = sorted({c.length for c in cells})
        scores = run_builtin_niah(args.model, tasks, lengths, max_length, **common)
    else:
        files = {t: sorted({c.data for c in cells if c.task == t}) for t in tasks}
        scores = run_niah(args.model, files, max_length, max_gen_toks=cfg.max_gen_toks, **common)
    results = []
    for c in cells:
        if c.length not in scores[c.task]:
            raise ValueError(
                f"{c.data}: no {c.task} documents with max_length {c.length} (found {sorted(scores[c.task])})"
            )
        results.append({"family": "niah", "metric": "string_match_all", **scores[c.task][c.length]})
    return results, cfg


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on (task, length) cells, one record each")
    families = p.add_subparsers(dest="family", required=True, metavar="{niah,qa,longbench}")
    helps = {
        "niah": "RULER NIAH through lm-eval (local jsonl, or lm-eval's tasks with builtin: true)",
        "qa": "RULER SQuAD/HotpotQA parquet (string_match_part of the first line)",
        "longbench": "LongBench task parquet files (ReFINE's scoring)",
    }
    for family, text in helps.items():
        f = families.add_parser(family, help=text, description=__doc__)
        f.add_argument("--model", required=True, help="checkpoint folder")
        f.add_argument("--cfg", default=None, help="JSON object or YAML/JSON file (NiahConfig / GenerationConfig)")
        f.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
        f.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
        add_cell_args(f, data_required=family != "niah")
        f.set_defaults(func=run)
