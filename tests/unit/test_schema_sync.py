"""Every workflow config section documents exactly the fields of the dataclass its command reads."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from refine.data.corpus import CorpusConfig
from refine.data.longbench import LongBenchConfig
from refine.data.niah import NiahConfig as NiahDataConfig
from refine.data.qa import QAConfig
from refine.data.tokenizer import TokenizerConfig
from refine.evaluate.generation import GenerationConfig
from refine.evaluate.lmeval.harness import NiahEvalConfig
from refine.rl.config import RefineConfig
from refine.train.config import MidConfig, OptimConfig, PostConfig, PretrainConfig, TTTConfig

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())

# section -> (dataclass, fields the workflow fills in itself rather than the config)
SECTIONS = {
    "tokenizer": (TokenizerConfig, set()),
    "corpus": (CorpusConfig, set()),
    "pretrain_corpus": (CorpusConfig, set()),  # its `length` is forbidden there: pretrain.max_length
    "pretrain": (PretrainConfig, {"model"}),  # base.tiny.<arch>
    "pretrain_long": (PretrainConfig, {"model"}),  # none: the model is the short phase's checkpoint
    "mid": (MidConfig, set()),
    "post": (PostConfig, set()),
    "ttt": (TTTConfig, {"generation"}),  # the `evaluation` section
    "niah": (NiahDataConfig, {"lengths"}),  # the top-level `lengths`
    "niah_eval": (NiahEvalConfig, set()),
    "qa": (QAConfig, {"lengths", "model"}),  # top-level `lengths`; the arch's file-name model
    "longbench": (LongBenchConfig, set()),
    "evaluation": (GenerationConfig, {"max_prompt_length"}),  # each cell's length minus generated tokens
}

# keys the workflow resolves before a command sees the section
WORKFLOW_ONLY = {"pretrain_corpus": {"by_arch"}, "pretrain_long": {"archs", "corpus"}}


def properties(node: dict) -> set[str]:
    """Property names of a schema node, following allOf / $ref into $defs."""
    names = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        names |= properties(SCHEMA["$defs"][part["$ref"].rsplit("/", 1)[1]])
    return names


def field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_section_matches_its_dataclass(section):
    cls, filled = SECTIONS[section]
    assert properties(SCHEMA["properties"][section]) - WORKFLOW_ONLY.get(section, set()) == field_names(cls) - filled


def test_nested_optim_and_refine_match():
    assert properties(SCHEMA["$defs"]["optim"]) == field_names(OptimConfig)
    assert properties(SCHEMA["$defs"]["refine"]) == field_names(RefineConfig)


def test_style_weights_are_the_corpus_styles():
    from refine.data.corpus import STYLES

    assert properties(SCHEMA["$defs"]["corpus"]["properties"]["style_weights"]) == set(STYLES)


@pytest.mark.parametrize("arch", ["deltanet", "lact"])
def test_tiny_overrides_are_the_model_configs_fields(arch):
    """base.tiny.<arch> accepts exactly the model config's fields, less those the tokenizer sets."""
    import inspect

    from refine.models.deltanet import DeltaNetConfig
    from refine.models.lact import LaCTConfig

    cls = {"deltanet": DeltaNetConfig, "lact": LaCTConfig}[arch]
    fields = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    allowed = SCHEMA["properties"]["base"]["properties"]["tiny"]["properties"][arch]["propertyNames"]["enum"]
    assert set(allowed) == fields - {"vocab_size", "pad_token_id", "eos_token_id"}


def schema_defaults(node: dict) -> dict:
    """Property name -> `default` of a schema node, through allOf / $ref (the section's own entries win)."""
    found = {}
    for part in node.get("allOf", []):
        found |= schema_defaults(SCHEMA["$defs"][part["$ref"].rsplit("/", 1)[1]])
    found |= {name: prop["default"] for name, prop in node.get("properties", {}).items() if "default" in prop}
    return found


def dataclass_default(cls, name: str):
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_schema_defaults_are_the_dataclass_defaults(section):
    """One source of defaults: a default the schema states (so the workflow can check it at DAG build) is the
    dataclass's, field by field."""
    cls, _ = SECTIONS[section]
    only = WORKFLOW_ONLY.get(section, set())
    stated = {k: v for k, v in schema_defaults(SCHEMA["properties"][section]).items() if k not in only}
    assert {name: dataclass_default(cls, name) for name in stated} == stated
