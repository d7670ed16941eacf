"""What ran, for the report's summary: config and its hash, models and sizes, seeds, job time, package
versions and data sources, read from the experiment's results folder. A fact the files do not hold is None
(the page says n/a and why)."""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import platform
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from refine.evaluate.records import config_hash

from .records import ARCH_NAMES

# The stack whose versions decide the numbers (distribution names); `refine env` prints the same and more.
PACKAGES = ("refine-repro", "torch", "transformers", "flash-linear-attention", "lm_eval", "snakemake", "numpy",
            "pandas")  # fmt: skip
# Config sections that name where their data comes from, and the keys that say where.
DATA_SECTIONS = ("base", "corpus", "qa", "longbench", "niah", "niah_eval")
DATA_KEYS = ("source", "local_dir", "hub", "repo", "revision", "builtin", "path")


@dataclass
class Model:
    arch: str
    kind: str  # model_type of its config.json
    params: int | None  # from the safetensors headers
    shape: str  # layers x hidden, vocab
    trained: dict[str, int]  # stage -> number of trained checkpoints


@dataclass
class Provenance:
    experiment: str
    generated: str
    config: dict | None
    config_hash: str | None
    models: list[Model]
    seeds: dict[str, list[int]]  # stage -> seeds seen in the records
    records: dict[str, int]  # family -> records
    metrics_runs: int
    job_time: pd.DataFrame | None  # rule, jobs, total_s, max_s: each job's wall seconds (Snakemake benchmark files)
    record_span: tuple[str, str] | None  # first and last record's `created`
    versions: dict[str, str]
    code: list[str] = field(default_factory=list)  # code revisions the records were made with
    data: dict[str, str] = field(default_factory=dict)  # section -> "key=value, ..."

    @property
    def job_time_total_s(self) -> float:
        return float(self.job_time["total_s"].sum()) if self.job_time is not None else math.nan


def parameter_count(model_dir: Path) -> int | None:
    """Number of stored parameters: the element counts in every ``*.safetensors`` header (no tensor is read)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total


def models(root: Path, archs: list[str]) -> list[Model]:
    """Each arch's base checkpoint (type, size) and how many checkpoints each stage trained."""
    out = []
    for arch in archs:
        base = root / arch / "base"
        cfg = json.loads((base / "config.json").read_text()) if (base / "config.json").is_file() else {}
        trained: dict[str, int] = {}
        for path in sorted((root / arch).glob("*-*")) if (root / arch).is_dir() else []:
            stage = path.name.split("-", 1)[0]
            trained[stage] = trained.get(stage, 0) + 1
        layers, hidden, vocab = (cfg.get(k) for k in ("num_hidden_layers", "hidden_size", "vocab_size"))
        shape = f"{layers} layers x {hidden} hidden, vocab {vocab}" if cfg else ""
        out.append(Model(arch, cfg.get("model_type", ""), parameter_count(base), shape, trained))
    return out


def job_times(root: Path) -> pd.DataFrame | None:
    """Job seconds per rule (each job's wall clock, summed) from Snakemake's benchmark files
    ``benchmarks/{rule}/.../*.tsv`` (column ``s``)."""
    rows = [
        {"rule": path.relative_to(root).parts[0], "s": float(pd.read_csv(path, sep="\t")["s"].iloc[-1])}
        for path in sorted(root.rglob("*.tsv"))
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", total_s="sum", max_s="max")
    return frame.reset_index().sort_values("total_s", ascending=False, ignore_index=True)


def versions() -> dict[str, str]:
    """Python and the stack's package versions in the environment building the report."""

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{p: version(p) for p in PACKAGES}}


def data_sources(config: dict | None) -> dict[str, str]:
    """``section -> "source=..., local_dir=..."`` for the config sections that say where data comes from."""
    out = {}
    for section in DATA_SECTIONS:
        values = (config or {}).get(section)
        if isinstance(values, dict):
            shown = [f"{k}={values[k]}" for k in DATA_KEYS if k in values]
            if shown:
                out[section] = ", ".join(shown)
    return out


def collect(results: Path, records: pd.DataFrame, metrics: pd.DataFrame, config: dict | None) -> Provenance:
    """Everything the summary shows, from ``results`` (an experiment folder), the loaded records and metrics
    and the workflow config (None when not given)."""
    experiments = sorted(set(records["experiment"])) if "experiment" in records and len(records) else []
    experiment = (config or {}).get("experiment") or ", ".join(experiments) or results.name
    archs = list(dict.fromkeys([*(config or {}).get("archs", []), *(records["arch"] if len(records) else [])]))
    seeds = {
        stage: sorted({int(s) for s in records.loc[records["stage"] == stage, "seed"]})
        for stage in ("mid", "post")
        if len(records) and (records["stage"] == stage).any()
    }
    created = sorted(records["created"].dropna()) if "created" in records and len(records) else []
    return Provenance(
        experiment=experiment,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=config,
        config_hash=config_hash(config)[:12] if config else None,
        models=models(results / "models", archs or list(ARCH_NAMES)),
        seeds=seeds,
        records=records["family"].value_counts().to_dict() if len(records) else {},
        metrics_runs=int(metrics["model"].nunique()) if "model" in metrics and len(metrics) else 0,
        job_time=job_times(results / "benchmarks") if (results / "benchmarks").is_dir() else None,
        record_span=(created[0], created[-1]) if created else None,
        versions=versions(),
        code=sorted(set(records["code_revision"].dropna())) if "code_revision" in records else [],
        data=data_sources(config),
    )
