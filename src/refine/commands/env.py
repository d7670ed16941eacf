"""`refine env`: versions of the stack and whether CUDA and fla's kernels are usable."""

from __future__ import annotations

import importlib.metadata as md
import platform


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def fla_status() -> str:
    """Whether fla's Triton kernels can run here (needs CUDA, triton and fla.ops importable)."""
    import torch

    if not torch.cuda.is_available():
        return "unused (no CUDA; the pure-torch kernels run)"
    try:
        import fla.ops.delta_rule  # noqa: F401  (lazy: only probed on CUDA)
    except Exception as err:  # any import failure means the torch path runs
        return f"unavailable ({type(err).__name__}: {err}); the pure-torch kernels run"
    return "usable (fla kernels on CUDA)"


def run(args) -> int:
    import torch

    rows = {
        "python": platform.python_version(),
        "refine": _version("refine-repro"),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "flash-linear-attention": _version("flash-linear-attention"),
        "fla-core": _version("fla-core"),
        "triton": _version("triton"),
        "lm-eval": _version("lm_eval"),
        "snakemake": _version("snakemake"),
        "snakemake-executor-plugin-slurm": _version("snakemake-executor-plugin-slurm"),
        "cuda": f"available, {torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else "not available",
        "fla kernels": fla_status(),
        "cpu threads": str(torch.get_num_threads()),
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("env", help="print versions and CUDA/fla status")
    p.set_defaults(func=run)
