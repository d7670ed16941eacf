"""Experiment identity: model names and their parsing, result paths, TTT modes and method variants.

This module is the one owner of these facts (docs/design.md, "Evaluation records"): the Snakefile imports it
to build every target, the commands use it to fill the identity fields of records and metrics, and the
report reads those fields; nothing else composes or parses a name. A name pattern is a template below; its
parser and the Snakemake wildcard constraints are derived from it, so renaming a pattern changes only here.
The path helpers only format, so they also build Snakemake patterns when given `"{wildcard}"` strings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

FAMILIES = ("niah", "qa", "longbench", "short")  # short: Table E.1's lm-eval suite
BASE = "base"
BASE_SHORT = "base_short"  # a base model's short phase, when it has a long one (pretrain_long)
MID_METHODS = ("sft", "refine")  # the comparison; ablations add refine_<variant>
POST_METHODS = ("sft", "nested_sft", "nested_refine")
TTT_MODES = ("none", "sft", "refine", "refine_cosine")  # refine_cosine: Table E.2
REFINE_FIELDS = ("c", "k", "n", "reward", "sampling", "rollout")  # the settings records and metrics carry

TEMPLATES = {"mid": "mid-{method}-s{seed}", "post": "post-{task}-{length}-{method}-s{seed}"}
FIELD_PATTERNS = {"method": r"[a-z0-9_]+", "seed": r"\d+", "task": r"[a-z0-9_]+", "length": r"\d+"}


def _regex(template: str, **patterns: str) -> str:
    """The template with each `{field}` replaced by its pattern (named groups when `patterns` is empty)."""

    def group(m: re.Match) -> str:
        name = m[1]
        return patterns[name] if patterns else f"(?P<{name}>{FIELD_PATTERNS[name]})"

    return re.sub(r"\{(\w+)\}", group, re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))


_PARSERS = {stage: re.compile(f"^{_regex(t)}$") for stage, t in TEMPLATES.items()}


def name_pattern(*stages: str) -> str:
    """A regex (no groups) matching the model names of `stages` (`base`, `mid`, `post`): wildcard constraints."""
    parts = [BASE if s == BASE else _regex(TEMPLATES[s], **FIELD_PATTERNS) for s in stages]
    return "|".join(parts)


@dataclass(frozen=True)
class ModelId:
    """A model's identity. `task` / `length` are set for post-trained models only (what they were trained on)."""

    stage: str  # base | mid | post
    method: str = "none"
    seed: int = 0
    task: str | None = None
    length: int | None = None

    @property
    def name(self) -> str:
        if self.stage == BASE:
            return BASE
        return TEMPLATES[self.stage].format(**dataclasses.asdict(self))

    def fields(self) -> dict[str, Any]:
        """The identity fields of records and metrics rows."""
        return {"model": self.name, "stage": self.stage, "method": self.method, "seed": self.seed,
                "post_task": self.task, "post_length": self.length}  # fmt: skip


def mid_name(method: str, seed: int | str) -> str:
    return ModelId("mid", method, seed).name


def post_name(task: str, length: int | str, method: str, seed: int | str) -> str:
    return ModelId("post", method, seed, task, length).name


def parse_model(name: str) -> ModelId:
    """The identity of a model name: `base`, `mid-{method}-s{seed}` or `post-{task}-{length}-{method}-s{seed}`."""
    if name == BASE:
        return ModelId(BASE)
    for stage, parser in _PARSERS.items():
        if m := parser.match(name):
            groups = m.groupdict()
            length = int(groups["length"]) if "length" in groups else None
            return ModelId(stage, groups["method"], int(groups["seed"]), groups.get("task"), length)
    raise ValueError(f"model name {name!r} is not {BASE}, {TEMPLATES['mid']} or {TEMPLATES['post']}")


# Paths under a results root `results/{experiment}` (docs/design.md; results/README.md).
def results_root(experiment: str) -> str:
    return f"results/{experiment}"


def model_dir(root: str, arch: str, model: str) -> str:
    return f"{root}/models/{arch}/{model}"


def metrics_path(root: str, arch: str, model: str) -> str:
    return f"{root}/train/{arch}/{model}/metrics.jsonl"


def state_dir(root: str, arch: str, model: str) -> str:
    return f"{root}/state/{arch}/{model}"


def record_path(root: str, arch: str, model: str, family: str, task: str, length: int | str, ttt: str = "none") -> str:
    return f"{root}/evals/{arch}/{model}/{family}/{task}_{length}_ttt-{ttt}.json"


# Method variants (spec 8.4): `refine_<v>[_<v>...]`, v a reward, a sampling or k<N> / c<N> / n<N>.
def method_variants(method: str) -> tuple[str, dict[str, Any]]:
    """(`sft` | `refine`, the RefineConfig fields the variant overrides) of a mid / TTT method name."""
    from refine.rl.config import REWARDS, SAMPLINGS

    base, _, variants = method.partition("_")
    if method == "sft" or (base == "refine" and not variants):
        return method, {}
    if base != "refine":
        raise ValueError(f"--method must be sft, refine or refine_<variant>, got {method!r}")
    updates: dict[str, Any] = {}
    for part in variants.split("_"):
        if part in REWARDS:
            updates["reward"] = part
        elif part in SAMPLINGS:
            updates["sampling"] = part
        elif re.fullmatch(r"[kcn]\d+", part):
            updates[part[0]] = int(part[1:])
        else:
            raise ValueError(f"--method {method!r}: unknown variant {part!r} (a reward, a sampling, k<N>, c<N>, n<N>)")
    return "refine", updates


def resolve_method(method: str, refine):
    """(`sft` | `refine`, the stage's RefineConfig with the variant applied) of a method name."""
    kind, updates = method_variants(method)
    return kind, dataclasses.replace(refine, **updates)


def refine_fields(refine, prefix: str = "refine_") -> dict[str, Any]:
    """The resolved REFINE settings as flat fields (`refine_c`, ...); None values when the run has none."""
    return {f"{prefix}{name}": getattr(refine, name) if refine is not None else None for name in REFINE_FIELDS}
