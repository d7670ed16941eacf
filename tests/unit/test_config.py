"""`--cfg` parsing and dataclass construction reject bad input with messages that name it."""

import dataclasses

import pytest

from refine.config import from_dict, load_cfg
from refine.workflow_config import check_workflow_config, long_pretrain_archs, pretrain_corpus_section


@dataclasses.dataclass
class Example:
    lr: float = 1e-3
    steps: int = 2


def test_load_cfg_json_and_yaml(tmp_path):
    assert load_cfg('{"lr": 0.5}') == {"lr": 0.5}
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.25\nsteps: 3\n")
    assert load_cfg(str(path)) == {"lr": 0.25, "steps": 3}
    assert load_cfg(None) == {}


def test_load_cfg_rejects_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_cfg("nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_cfg(str(path))


def test_from_dict_names_unknown_keys():
    assert from_dict(Example, {"lr": 0.1}) == Example(lr=0.1)
    with pytest.raises(ValueError, match=r"Example: unknown key\(s\) \['setps'\]"):
        from_dict(Example, {"setps": 3})


def _workflow(**over):
    cfg = {"lengths": [512, 1024], "length_labels": ["4K", "8K"], "evaluation": {"batch_size": 8},
           "corpus": {"length": 256}, "pretrain_corpus": {"min_length": 128},
           "pretrain": {"batch_size": 4, "max_length": 256}, "pretrain_long": {}, "archs": ["deltanet", "lact"],
           "mid": {"batch_size": 4, "micro_batch_size": 2, "max_length": 256},
           "post": {"batch_size": 4, "refine": {"mini_batch_size": 4}}, "ttt": {"micro_batch_size": 8},
           "mid_seeds": [0, 1, 2], "ablations": {"seeds": None}}  # fmt: skip
    return cfg | over


def test_workflow_cross_key_rules_name_the_key():
    check_workflow_config(_workflow())
    with pytest.raises(ValueError, match="length_labels: 1 labels for 2 lengths"):
        check_workflow_config(_workflow(length_labels=["4K"]))
    with pytest.raises(ValueError, match=r"mid\.micro_batch_size: 8 sequences exceed mid\.batch_size \(4\)"):
        check_workflow_config(_workflow(mid={"batch_size": 4, "micro_batch_size": 8}))
    with pytest.raises(ValueError, match=r"post\.refine\.mini_batch_size: 5 .* post\.batch_size"):
        check_workflow_config(_workflow(post={"batch_size": 4, "refine": {"mini_batch_size": 5}}))
    with pytest.raises(ValueError, match=r"ttt\.refine\.mini_batch_size: 9 .* evaluation\.batch_size \(8\)"):
        check_workflow_config(_workflow(ttt={"refine": {"mini_batch_size": 9}}))
    with pytest.raises(ValueError, match=r"corpus\.length: 512-token documents exceed mid\.max_length \(256\)"):
        check_workflow_config(_workflow(corpus={"length": 512}))
    check_workflow_config(_workflow(corpus={"length": 512, "source": "hub"}))  # hub: a minimum, cut anyway
    with pytest.raises(ValueError, match=r"pretrain_corpus\.min_length: 300 tokens exceed pretrain\.max_length"):
        check_workflow_config(_workflow(pretrain_corpus={"min_length": 300}))
    with pytest.raises(ValueError, match=r"pretrain_corpus\.by_arch\.lact\.min_length: 300 tokens exceed"):
        check_workflow_config(_workflow(pretrain_corpus={"min_length": 128, "by_arch": {"lact": {"min_length": 300}}}))
    long = {"archs": ["lact"], "batch_size": 2, "max_length": 512, "corpus": {"min_length": 384}}
    check_workflow_config(_workflow(pretrain_long=long))
    too_long = r"pretrain_long\.corpus \(over pretrain_corpus\)\.min_length: 600 .* pretrain_long\.max_length"
    with pytest.raises(ValueError, match=too_long):
        check_workflow_config(_workflow(pretrain_long=long | {"corpus": {"min_length": 600}}))
    with pytest.raises(ValueError, match=r"pretrain_long\.micro_batch_size: 4 sequences exceed pretrain_long\.batch"):
        check_workflow_config(_workflow(pretrain_long=long | {"micro_batch_size": 4}))
    check_workflow_config(_workflow(pretrain_long=long, archs=["deltanet"]))  # no long phase to run: no error
    check_workflow_config(_workflow(ablations={"seeds": [0, 2]}))
    with pytest.raises(ValueError, match=r"ablations\.seeds: \[3\] not in mid_seeds \[0, 1, 2\]"):
        check_workflow_config(_workflow(ablations={"seeds": [0, 3]}))


def test_the_long_phase_goes_to_the_configured_archs_that_run():
    cfg = {"archs": ["deltanet", "lact"], "base": {"source": "pretrain"}, "pretrain_long": {"archs": ["lact"]}}
    assert long_pretrain_archs(cfg) == ["lact"]
    assert long_pretrain_archs(cfg | {"archs": ["deltanet"]}) == []  # e.g. the smoke DAG's DeltaNet half
    assert long_pretrain_archs(cfg | {"base": {"source": "hub"}}) == []  # the paper's checkpoints are downloaded


def test_an_arch_pretrains_on_its_by_arch_fields_over_the_shared_ones():
    shared = {"seed": 2, "style_weights": {"prose": 1, "needle": 3}}
    cfg = {"pretrain_corpus": {**shared, "by_arch": {"deltanet": {"style_weights": {"qa": 1}}}}}
    assert pretrain_corpus_section(cfg, "deltanet") == {"seed": 2, "style_weights": {"qa": 1}}
    assert pretrain_corpus_section(cfg, "lact") == pretrain_corpus_section(cfg, None) == shared
    cfg["pretrain_long"] = {"corpus": {"seed": 3, "min_length": 768}}  # the long phase's documents: these over those
    long = {"seed": 3, "style_weights": {"qa": 1}, "min_length": 768}
    assert pretrain_corpus_section(cfg, "deltanet", long=True) == long
    assert pretrain_corpus_section(cfg, "lact", long=False) == shared


@pytest.mark.parametrize(
    "error, line",
    [
        (KeyError("data.parquet: missing column(s) ['text']"), "KeyError: data.parquet: missing column(s) ['text']"),
        (TypeError("GenerationConfig.__init__() got an unexpected keyword"), "TypeError: GenerationConfig"),
        (ValueError("--cfg: unknown key(s) ['x']"), "--cfg: unknown key(s) ['x']"),
    ],
)
def test_cli_reports_bad_input_in_one_line(monkeypatch, capsys, error, line):
    from refine import cli
    from refine.commands import env

    def fail(args):
        raise error

    monkeypatch.setattr(env, "run", fail)
    assert cli.main(["env"]) == 2
    err = capsys.readouterr().err
    assert line in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_threads_come_from_the_argument_else_the_environment(monkeypatch):
    import torch

    from refine.config import set_threads

    monkeypatch.setenv("REFINE_THREADS", "2")
    try:
        set_threads()
        assert torch.get_num_threads() == 2
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)  # the suite's setting (conftest)
