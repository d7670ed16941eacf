"""RULER NIAH through lm-evaluation-harness 0.4.13 (spec §7.4): our local jsonl tasks or lm-eval's built-ins.

Local tasks: one YAML per task is rendered into a run folder (absolute `data_files`, since lm-eval resolves
them against the working directory) that includes the packaged `niah_local.yaml`, and is loaded with
`TaskManager(include_path=run_dir)`. Checkpoints load through lm-eval's `HFLM` after `import refine`
registered our model types; `max_length` must be passed, else HFLM left-truncates prompts to the config's
`max_position_embeddings` (lm_eval/models/huggingface.py:620-625, 1644-1655).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

BASE_YAML = Path(__file__).with_name("niah_local.yaml")
NIAH_FIELDS = ("input", "outputs", "gen_prefix", "max_length")


@dataclass
class NiahEvalConfig:
    max_length: int | None = None  # HFLM context limit; default: the longest sequence length + max_gen_toks
    max_gen_toks: int = 128  # lm-eval's RULER NIAH value (niah_single_1.yaml)
    batch_size: int = 1
    limit: int | None = None  # first `limit` documents per task (smoke runs)
    builtin: bool = False  # lm-eval's own niah_* tasks (the paper's route) instead of local files


def scan_niah_file(path: str | Path) -> set[int]:
    """The `max_length` values in a NIAH jsonl file; a missing file, bad JSON or missing field is an error
    naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIAH data file not found: {path}")
    lengths = set()
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not JSON ({err})") from None
            missing = [f for f in NIAH_FIELDS if f not in doc]
            if missing:
                raise ValueError(f"{path}:{lineno}: missing field(s) {missing}; NIAH rows need {list(NIAH_FIELDS)}")
            lengths.add(int(doc["max_length"]))
    if not lengths:
        raise ValueError(f"{path}: no rows")
    return lengths


def render_niah_tasks(
    files: Mapping[str, str | Path | Sequence[str | Path]], run_dir: str | Path, max_gen_toks: int = 128
) -> dict[str, str]:
    """Write `<run_dir>/<name>.yaml` per entry of `files` (name -> jsonl path(s)); returns name -> lm-eval task
    name (`local_<name>`). Metrics are the sequence lengths found in the files, as strings."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, paths in files.items():
        paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        lengths = sorted(set().union(*(scan_niah_file(p) for p in paths)))
        task = f"local_{name}"
        config = {
            "include": str(BASE_YAML),
            "task": task,
            "dataset_kwargs": {"data_files": {"test": [str(p.resolve()) for p in paths]}},
            "metric_list": [{"metric": str(n), "aggregation": "mean", "higher_is_better": True} for n in lengths],
            "generation_kwargs": {
                "do_sample": False,
                "temperature": 0.0,
                "max_gen_toks": max_gen_toks,
                "until": [],
            },
        }
        (run_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names[name] = task
    return names


def load_hflm(
    model_dir: str | Path,
    max_length: int,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 1,
    tokenizer: str | Path | None = None,
):
    """lm-eval's `HFLM` on our checkpoint: causal backend, explicit `max_length`, and `add_bos_token=False`
    (0.4.13's default None defers to the tokenizer, which adds BOS for Llama-style ones; spec §10.13: no BOS)."""
    from lm_eval.models.huggingface import HFLM

    import refine.models  # noqa: F401  (registers our configs/models with transformers' Auto classes)

    return HFLM(
        pretrained=str(model_dir),
        tokenizer=str(tokenizer or model_dir),
        backend="causal",
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        max_length=max_length,
        add_bos_token=False,
    )


def run_niah(
    model,
    files: Mapping[str, str | Path | Sequence[str | Path]],
    max_length: int,
    *,
    max_gen_toks: int = 128,
    limit: int | None = None,
    run_dir: str | Path | None = None,
    **hflm_kwargs,
) -> dict[str, dict[int, dict]]:
    """Evaluate local NIAH jsonl files (name -> path(s)) with `model` (a checkpoint folder, or an lm-eval `LM`).

    Returns `{name: {length: {"score": x100, "n": int, "examples": [...]}}}` (examples as in records).
    `hflm_kwargs` go to `load_hflm` (device, dtype, batch_size, tokenizer).
    """
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        names = render_niah_tasks(files, run_dir or tmp, max_gen_toks)
        manager = TaskManager(include_path=str(run_dir or tmp), include_defaults=False)
        lm = model if _is_lm(model) else load_hflm(model, max_length, **hflm_kwargs)
        res = _evaluate(lm, list(names.values()), manager, limit)
    return {name: collect_scores(res, task) for name, task in names.items()}


def run_builtin_niah(
    model,
    tasks: Sequence[str],
    lengths: Sequence[int],
    max_length: int,
    *,
    tokenizer: str | Path | None = None,
    limit: int | None = None,
    **hflm_kwargs,
) -> dict[str, dict[int, dict]]:
    """The paper's route: lm-eval's own `niah_*` tasks, generated at `lengths` with the model's tokenizer
    (`metadata={"max_seq_lengths": ..., "tokenizer": ...}`, lm_eval/tasks/ruler/common_utils.py:24-69).
    Offline only `niah_single_1` works (the others download Paul Graham essays). Returns as `run_niah`."""
    from lm_eval.tasks import TaskManager

    if tokenizer is None and _is_lm(model):
        raise ValueError("run_builtin_niah: pass tokenizer= when model is an LM object")
    metadata = {"max_seq_lengths": list(lengths), "tokenizer": str(tokenizer or model)}
    lm = model if _is_lm(model) else load_hflm(model, max_length, tokenizer=tokenizer, **hflm_kwargs)
    res = _evaluate(lm, list(tasks), TaskManager(metadata=metadata), limit)
    return {task: collect_scores(res, task) for task in tasks}


def collect_scores(res: dict, task: str) -> dict[int, dict]:
    """Per-length score (x100), count and examples of one task from `simple_evaluate(..., log_samples=True)`;
    each example's score is lm-eval's per-document metric for its own length."""
    by_length: dict[int, list[dict]] = defaultdict(list)
    for sample in res["samples"][task]:
        doc = sample["doc"]
        length = int(doc["max_length"])
        by_length[length].append(
            {
                "index": doc.get("index", sample["doc_id"]),
                "prediction": sample["resps"][0][0],
                "references": list(doc["outputs"]),
                "score": float(sample[str(length)]),
            }
        )
    return {
        n: {"score": 100 * sum(e["score"] for e in ex) / len(ex), "n": len(ex), "examples": ex}
        for n, ex in sorted(by_length.items())
    }


def _evaluate(lm, tasks: list[str], manager, limit: int | None, **kwargs) -> dict:
    """`lm_eval.simple_evaluate` with samples logged, no bootstrap, hub offline unless the environment says
    otherwise; `kwargs` go to it (e.g. num_fewshot)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm, tasks=tasks, task_manager=manager, limit=limit, log_samples=True, bootstrap_iters=0, **kwargs
    )


def _is_lm(model) -> bool:
    from lm_eval.api.model import LM

    return isinstance(model, LM)
