"""`refine <command>`: the one entry point every Snakemake rule calls.

Each command group lives in `refine.commands.<name>` and registers itself through `add_parser(subparsers)`,
setting `func` on its parser. Groups import their heavy dependencies inside the command, so `refine --help`
stays fast and never imports fla.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from refine import __version__
from refine.config import set_threads
from refine.logs import setup_logging

COMMAND_GROUPS = ("env", "data", "train", "evaluate", "report", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available command group registered."""
    parser = argparse.ArgumentParser(prog="refine", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"refine {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name in COMMAND_GROUPS:
        importlib.import_module(f"refine.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, set up logging once, run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    set_threads()  # $REFINE_THREADS: one job, its cores (set by the workflow)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as err:  # bad input: one clear line
        log = logging.getLogger("refine")
        if isinstance(err, (KeyError, TypeError)):  # name the kind; str(KeyError) would add quotes
            log.error("%s: %s", type(err).__name__, err.args[0] if err.args else err)
        else:
            log.error("%s", err)
        log.debug("traceback", exc_info=True)  # --log-level DEBUG shows where
        return 2


if __name__ == "__main__":
    sys.exit(main())
