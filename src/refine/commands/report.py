"""`refine report`: the paper's tables, figures and claim checks from evaluation records and training metrics.

Subcommands share the inputs ``--records DIR`` (an ``evals`` folder of JSON records), ``--metrics DIR`` (a
``train`` folder of ``metrics.jsonl``; optional), ``--niah-map JSON`` and ``--ablation-family``; each writes
its files under ``--out DIR`` atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from refine.experiment import FAMILIES

log = logging.getLogger("refine.report")


def _inputs(args):
    from refine.report.records import NIAH_FAMILIES, load_metrics, load_records
    from refine.report.tables import build_all

    if not Path(args.records).is_dir():
        raise FileNotFoundError(f"records folder not found: {args.records}")
    records = load_records(args.records)
    metrics = load_metrics(args.metrics)
    niah = json.loads(args.niah_map) if args.niah_map else NIAH_FAMILIES
    log.info("%d records, %d metric lines", len(records), len(metrics))
    tables = build_all(records, niah, args.ablation_family, tuple(args.niah_tasks), tuple(args.ablation_seeds))
    for table in tables.values():  # a family the config leaves out: its tables say so instead of "not run"
        families = {c.where.get("family") for c in table.spec.cols}
        if families <= set(args.not_configured):
            table.not_configured = "not configured (" + ", ".join(f"{f}.source: none" for f in sorted(families)) + ")"
        if families & set(args.pipeline_only):  # its claims read NOT MEASURABLE
            table.pipeline_only = tuple(sorted(families & set(args.pipeline_only)))
    return tables, metrics, records


def _write_tables(tables, out: Path, deltas: bool) -> list[Path]:
    from refine.report.render import write_table

    paths = [p for t in tables.values() for p in write_table(t, out, deltas)]
    for t in tables.values():
        if missing := t.missing():
            log.info("%s: %d of %d cells n/a", t.spec.name, len(missing), len(t.index) * len(t.columns))
    return paths


def _write_figures(tables, metrics, out: Path) -> list[Path]:
    from refine.atomic import atomic_write_text as atomic_write
    from refine.report.figures import summary_effects, write_figures

    atomic_write(out / "summary_refine_minus_sft.csv", summary_effects(tables).to_csv(index=False))
    return write_figures(tables, metrics, out)


def _write_claims(tables, metrics, out: Path):
    from refine.atomic import atomic_write_text as atomic_write
    from refine.report.claims import run_claims, to_markdown

    claims = run_claims(tables, metrics)
    atomic_write(out / "claims.csv", claims.to_csv(index=False))  # full precision: the report reads it back
    atomic_write(out / "claims.md", to_markdown(claims))
    log.info("claims: %s", claims["status"].value_counts().to_dict())
    return claims


def _read_claims(path):
    """claims.csv as `_write_claims` had it: booleans, numbers (blank = NaN) and text by column."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in frame:
        values = frame[column].replace("", None)
        if values.notna().any() and values.dropna().isin(["True", "False"]).all():
            frame[column] = values == "True"
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum() and values.notna().any():
            frame[column] = numbers
    return frame


def tables(args) -> int:
    _write_tables(_inputs(args)[0], Path(args.out), args.paper_config)
    return 0


def figures(args) -> int:
    _write_figures(*_inputs(args)[:2], Path(args.out))
    return 0


def claims(args) -> int:
    _write_claims(*_inputs(args)[:2], Path(args.out))
    return 0


def build(args) -> int:
    """Tables, figures and claims under ``out/{tables,figures}`` and ``out`` (or, with ``--figures`` and
    ``--claims``, those already made), then report.md / report.html with a summary of the run read from
    ``--results`` (default: the folder holding ``--records``)."""
    from refine.atomic import atomic_write_text as atomic_write
    from refine.report.provenance import collect
    from refine.report.summary import to_html, to_markdown

    if bool(args.figures) != bool(args.claims):
        raise ValueError("refine report build: --figures and --claims go together")
    out = Path(args.out)
    built, metrics, records = _inputs(args)
    if args.figures:  # the outputs of `refine report figures` / `claims`; the tables are built in memory only
        from refine.report.figures import captions

        figs = [f for f in (Path(args.figures) / f"{name}.png" for name in captions()) if f.is_file()]
        result = _read_claims(args.claims)
    else:
        _write_tables(built, out / "tables", args.paper_config)
        figs = _write_figures(built, metrics, out / "figures")
        result = _write_claims(built, metrics, out)
    config = json.loads(args.config_json) if args.config_json else None
    run = collect(Path(args.results or Path(args.records).parent), records, metrics, config)
    atomic_write(out / "report.md", to_markdown(built, result, figs, out, args.paper_config, run))
    atomic_write(out / "report.html", to_html(built, result, figs, args.paper_config, run))
    return 0


def screenshot(args) -> int:
    """PNG of a report page as a browser shows it (headless Chromium), e.g. for the README."""
    from refine.report.browser import open_report

    with open_report(Path(args.html), width=args.width, height=args.height) as page:
        page.screenshot(Path(args.out), full=args.full_page)
        if page.errors:
            log.warning("browser console errors: %s", page.errors)
    log.info("wrote %s", args.out)
    return 0


def add_parser(subparsers) -> None:
    group = subparsers.add_parser("report", help="tables, figures and claim checks from records")
    sub = group.add_subparsers(dest="report_command", required=True, metavar="<subcommand>")
    for name, func, help_ in (
        ("tables", tables, "tables 3-7, E.1, E.2, Fig. 5 data (csv/md/tex + vs paper)"),
        ("figures", figures, "Fig. 4, E.1, E.3, 5 and the REFINE-SFT summary (png/pdf)"),
        ("claims", claims, "spec section 9 claims: verdicts with 95%% intervals (csv/md)"),
        ("build", build, "all of the above plus report.md and a self-contained report.html"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--records", required=True, help="folder of evaluation records (results/{exp}/evals)")
        p.add_argument("--metrics", help="folder of training metrics (results/{exp}/train); optional")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--niah-map", help='JSON {"S": "niah_single_1", "MK": ..., "MQ": ..., "MV": ...} (spec 7.4)')
        p.add_argument(
            "--not-configured",
            action="append",
            default=[],
            choices=["longbench"],
            help="an evaluation family the config leaves out (longbench.source: none); its tables say so",
        )
        p.add_argument(
            "--pipeline-only",
            action="append",
            default=[],
            choices=FAMILIES,
            help="an evaluation family that tests the pipeline only at this scale (config report.pipeline_only)",
        )
        p.add_argument(
            "--ablation-family",
            default="longbench",
            choices=["longbench", "qa", "niah", "short"],
            help="family averaged in the ablation tables and Fig. 5 (paper: longbench)",
        )
        p.add_argument(
            "--niah-tasks",
            nargs="+",
            default=[],
            help="NIAH tasks evaluated (niah.tasks): the ablation tables' NIAH average runs over them (default: all)",
        )
        p.add_argument(
            "--ablation-seeds",
            nargs="+",
            type=int,
            default=[],
            help="seeds the ablation variants ran at (ablations.seeds): the ablation tables compare every column, "
            "REFINE's too, at them alone (default: every seed)",
        )
        if name == "build":
            p.add_argument(
                "--config-json", help="the workflow config as JSON, for the summary (config, hash, data sources)"
            )
            p.add_argument("--results", help="experiment folder (models/, benchmarks/); default: parent of --records")
            p.add_argument("--figures", help="folder of the figures `refine report figures` made (use, not redraw)")
            p.add_argument("--claims", help="claims.csv that `refine report claims` made (use, not recheck)")
        if name in ("tables", "build"):
            p.add_argument(
                "--paper-config",
                action="store_true",
                help="the run used the paper's configuration: add Δ (ours - paper) rows",
            )
        p.set_defaults(func=func)
    p = sub.add_parser("screenshot", help="PNG of a report.html in headless Chromium (needs chromium, selenium)")
    p.add_argument("html", help="report.html")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--width", type=int, default=1280, help="window width (px)")
    p.add_argument("--height", type=int, default=1000, help="window height (px); the shot's height unless --full-page")
    p.add_argument("--full-page", action="store_true", help="the whole page, not the first window")
    p.set_defaults(func=screenshot)
