"""The package imports without CUDA and without fla; the CLI lists its commands; `refine env` reports."""

import argparse
import subprocess
import sys


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_import_does_not_touch_fla_or_cuda():
    out = run_python(
        "import sys, refine, refine.cli; "
        "print(any(m == 'fla' or m.startswith('fla.') for m in sys.modules)); "
        "import torch; print(torch.cuda.is_initialized())"
    )
    assert out.split() == ["False", "False"]


def test_package_import_is_light():
    """`import refine`, the CLI parser and the report (tables, figures, claims, page) pull neither torch nor
    transformers: record-only jobs start in a fraction of a second."""
    out = run_python(
        "import sys, pkgutil, importlib, refine.cli, refine.report; refine.cli.build_parser(); "
        "[importlib.import_module(f'refine.report.{m.name}') for m in pkgutil.iter_modules(refine.report.__path__)]; "
        "print(*(m in sys.modules for m in ('torch', 'transformers')))"
    )
    assert out.split() == ["False", "False"]


def test_import_registers_both_models():
    out = run_python(
        "import refine.models; from transformers import AutoConfig; "
        "print(*(AutoConfig.for_model(t).__class__.__module__ for t in ('delta_net', 'lact_swiglu')))"
    )
    assert out.split() == ["refine.models.deltanet", "refine.models.lact"]


def test_cli_help_lists_command_groups():
    from refine.cli import COMMAND_GROUPS, build_parser

    help_text = build_parser().format_help()
    for group in COMMAND_GROUPS:
        assert group in help_text


def _parsers(parser: argparse.ArgumentParser):
    """``parser`` and every parser below it (command groups, subcommands)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_help_page_renders():
    """`refine <group> [<subcommand>] --help` formats (a bare % in a help string breaks argparse's)."""
    from refine.cli import build_parser

    pages = [p.format_help() for p in _parsers(build_parser())]
    assert len(pages) > 10 and all(p.startswith("usage: refine") for p in pages)


def test_refine_env_prints_versions_and_status(capsys):
    from refine.cli import main

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for key in ("torch", "transformers", "flash-linear-attention", "lm-eval", "snakemake", "cuda", "fla kernels"):
        assert key in out
    assert "2.13.0" in out
