"""Peak memory per GPU predicted without one (the measurement is `refine.bench.peak.peak_bytes`).

The model (docs/design.md, "Memory model"): peak = static + activations.

* static (`static_bytes`, from the parameter counts): 16 bytes per parameter (fp32 weights and gradients, AdamW's
  two fp32 moments), divided by the world size under FSDP; plus bf16 weight copies (autocast, single GPU) or the
  gathered blocks and unsharded block gradients (FSDP2). Gradients are counted in full alongside the activations,
  which over-states a step whose peak comes before the backward has produced them: an upper bound.
* activations (`Calibration`): a linear function of the shapes, sum_i coef_i * feature_i over :data:`FEATURES`
  (B = micro-batch, L = length): B*L*layers*hidden (what each block saves), B*L*hidden (embedding output, the block
  recomputed under checkpointing), B*L*vocab (logits, softmax and their gradient; small when fused), B*layers*hidden
  (recurrent states of REFINE's branches) and a constant. One coefficient set per model family and
  (method, checkpointing, fused CE), fitted by least squares to measured peaks of small family members on CPU
  (`calibrate_cpu`: fp32, the torch kernels), and optionally rescaled as a whole to measured GPU peaks (`rescale`),
  since bf16 activations and fla's kernels save less than the fp32 torch path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

# --- the memory model ---------------------------------------------------------------------------------------------

#: usable memory of the GPU classes the paper's setups use: nvidia-smi's totals of an L4 (24 GB), L40/L40S (48 GB),
#: H100 (80 GB) and H200 (141 GB), in MiB
GPU_MIB = {"24GB": 23034, "48GB": 46068, "80GB": 81559, "141GB": 143771}
HEADROOM = 2**30  # CUDA context and allocator slack that torch's allocated bytes do not show
FEATURES = ("B*L*layers*hidden", "B*L*hidden", "B*L*vocab", "B*layers*hidden", "1")


@dataclass(frozen=True)
class Shapes:
    """The sizes of a model config that its memory depends on."""

    params: int
    matmul_params: int  # all but the input embedding
    block_params: int  # one decoder block
    layers: int
    hidden: int
    vocab: int

    @classmethod
    def of(cls, config) -> Shapes:
        """Count the parameters of ``config``'s model, built on the meta device (no memory, no init cost)."""
        from transformers import AutoModelForCausalLM

        from refine.bench.steps import matmul_params
        from refine.models import register_auto_classes

        register_auto_classes()
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        blocks = next(m for m in model.modules() if isinstance(m, torch.nn.ModuleList))
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            matmul_params=matmul_params(model),
            block_params=max(sum(p.numel() for p in block.parameters()) for block in blocks),
            layers=len(blocks),
            hidden=config.hidden_size,
            vocab=config.vocab_size,
        )


@dataclass(frozen=True)
class Setup:
    """What a training step runs: micro-batch, length, method and switches; ``world`` > 1 means FSDP over it."""

    micro_batch: int
    length: int
    method: str = "sft"
    checkpointing: bool = True
    fused_ce: bool = True
    precision: str = "bf16"
    world: int = 1
    device: str = "cuda"

    @property
    def switches(self) -> tuple:
        """The fields an activation calibration holds for (the others are features or the static term)."""
        return (self.method, self.checkpointing, self.fused_ce)


def static_bytes(shapes: Shapes, setup: Setup) -> float:
    """Weights, gradients and AdamW states, and the low-precision weight copies.

    16 bytes per parameter (fp32 weights, fp32 gradients, AdamW's two fp32 moments; spec 4.9), divided over the
    ranks under FSDP. Single GPU with bf16 autocast: a bf16 copy of every matmul weight (autocast's cast, kept for
    backward). FSDP2 (one unit per block plus the root): two blocks' and the root's weights gathered in the compute
    dtype (the block running, the next prefetched) and one block's and the root's fp32 gradients before their
    reduce-scatter.
    """
    low = 2 if setup.precision == "bf16" else 4
    out = 16 * shapes.params / setup.world
    if setup.world > 1:
        root = shapes.params - shapes.layers * shapes.block_params
        out += low * (2 * shapes.block_params + root) + 4 * (shapes.block_params + root)
    elif setup.precision == "bf16":
        out += 2 * shapes.matmul_params
    return out


def optimizer_bytes(shapes: Shapes, setup: Setup) -> float:
    """The optimizer step's transient: on CUDA AdamW runs `foreach`, whose `_foreach_sqrt` of the second moments
    allocates 4 bytes per (local) parameter at once (torch/optim/adam.py, `_multi_tensor_adam`); on CPU the
    per-parameter loop allocates one tensor's worth (left to the calibration's constant)."""
    return 4 * shapes.params / setup.world if setup.device == "cuda" else 0.0


def features(shapes: Shapes, setup: Setup) -> list[float]:
    """The activation terms, in :data:`FEATURES` order: per token and layer (saved block activations), per token
    (embedding output, final norm, the recomputed block under checkpointing), per token and vocabulary entry
    (logits, softmax and their gradient, unless fused), per sequence and layer (the recurrent states REFINE's
    branches fork) and a constant."""
    b, n, d = setup.micro_batch, shapes.layers, shapes.hidden
    tokens = b * setup.length
    return [tokens * n * d, tokens * d, tokens * shapes.vocab, b * n * d, 1.0]


@dataclass(frozen=True)
class Calibration:
    """Activation bytes = ``scale`` * sum(coef * features), for one model family and one ``Setup.switches``."""

    coef: tuple[float, ...]
    source: str
    scale: float = 1.0

    def activation_bytes(self, shapes: Shapes, setup: Setup) -> float:
        return self.scale * sum(c * f for c, f in zip(self.coef, features(shapes, setup)))


def fit(runs: list[tuple[Shapes, Setup, float]], source: str) -> Calibration:
    """Least-squares coefficients from measured peaks (>= len(FEATURES) runs of one ``switches``)."""
    import numpy as np

    x = np.array([features(shapes, setup) for shapes, setup, _ in runs])
    y = np.array([peak - static_bytes(shapes, setup) for shapes, setup, peak in runs])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return Calibration(tuple(float(c) for c in coef), source)


def rescale(calibration: Calibration, runs: list[tuple[Shapes, Setup, float]], source: str) -> Calibration:
    """The same activation shape, scaled to match measured peaks of another device or precision (least squares
    over ``runs``, e.g. GPU rows of `refine bench gpu`)."""
    pred = [calibration.activation_bytes(shapes, setup) / calibration.scale for shapes, setup, _ in runs]
    seen = [peak - static_bytes(shapes, setup) for shapes, setup, peak in runs]
    scale = sum(p * s for p, s in zip(pred, seen)) / sum(p * p for p in pred)
    return dataclasses.replace(
        calibration, scale=scale, source=f"{calibration.source}, rescaled x{scale:.2f} to {source}"
    )


def predict(shapes: Shapes, setup: Setup, calibration: Calibration) -> dict:
    """Predicted peak bytes per GPU: static + the larger of the activations (forward/backward) and the optimizer
    step's transient (the activations are gone by then); its parts; the GPU classes of :data:`GPU_MIB` it fits."""
    static = static_bytes(shapes, setup)
    activations = calibration.activation_bytes(shapes, setup)
    optimizer = optimizer_bytes(shapes, setup)
    peak = static + max(activations, optimizer)
    fits = [name for name, mib in GPU_MIB.items() if peak + HEADROOM <= mib * 2**20]
    return {
        "static_bytes": static,
        "activation_bytes": activations,
        "optimizer_bytes": optimizer,
        "peak_bytes": peak,
        "fits": fits,
    }


# --- calibration on CPU -------------------------------------------------------------------------------------------

#: per model family: the tiny config it is calibrated with, and the head counts for a hidden size (head sizes as
#: the paper configs': DeltaNet-1.3B 128; LaCT-760M attention 64, fast-weight heads kept 2 per 256 as the tiny's)
FAMILIES = {
    "delta_net": ("deltanet-tiny", lambda d: {"num_heads": max(1, d // 128)}),
    "lact_swiglu": ("lact-tiny", lambda d: {"num_attn_heads": max(1, d // 64), "num_lact_heads": max(1, d // 128)}),
}
#: (layers, hidden, vocab, length, micro-batch) of the calibration runs: every feature varies independently, two
#: widths (the least-squares fit is overdetermined), lengths long enough for the per-layer term to stand out from
#: the weights under checkpointing
CALIBRATION_SIZES = (
    (2, 128, 512, 1024, 1),
    (2, 128, 512, 2048, 1),
    (4, 128, 512, 1024, 1),
    (4, 128, 512, 2048, 2),
    (2, 128, 2048, 1024, 1),
    (2, 256, 512, 1024, 1),
    (4, 256, 1024, 2048, 1),
)


def family_overrides(model_type: str, layers: int, hidden: int, vocab: int) -> dict:
    """Config fields of a small member of ``model_type``'s family."""
    return {"num_hidden_layers": layers, "hidden_size": hidden, "vocab_size": vocab, **FAMILIES[model_type][1](hidden)}


def measure_peak(model_type: str, size: tuple[int, ...], setup: Setup) -> tuple[Shapes, Setup, float]:
    """One measured CPU run of a family member (fp32, one rank): its shapes, setup and peak bytes."""
    from refine.bench.steps import StepBench, measure

    layers, hidden, vocab, length, batch = size
    setup = dataclasses.replace(setup, micro_batch=batch, length=length, precision="fp32", world=1, device="cpu")
    spec = StepBench(
        FAMILIES[model_type][0],
        length,
        setup.method,
        batch,
        "fp32",
        setup.checkpointing,
        setup.fused_ce,
        False,
        warmup=1,
        steps=1,
        overrides=family_overrides(model_type, layers, hidden, vocab),
    )
    return Shapes.of(spec.config()), setup, float(measure(spec)["peak_bytes"])


def calibrate_cpu(model_type: str, setup: Setup, sizes=CALIBRATION_SIZES) -> Calibration:
    """Fit ``model_type``'s activation coefficients for ``setup.switches`` to CPU runs at ``sizes``."""
    runs = [measure_peak(model_type, size, setup) for size in sizes]
    return fit(runs, f"CPU fp32 fit to {len(runs)} runs of small {model_type} models")


def measured_runs(path: Path | str) -> list[tuple[str, Shapes, Setup, float]]:
    """The successful rows of a `refine bench gpu` JSON as (model type, shapes, setup, peak bytes)."""
    from refine.bench.steps import StepBench

    out = []
    for row in json.loads(Path(path).read_text())["runs"]:
        if row["status"] != "ok":
            continue
        fields = {f.name for f in dataclasses.fields(StepBench)} - {"refine"}
        config = StepBench(**{k: v for k, v in row.items() if k in fields}).config()
        device = "cuda" if row["device"].startswith("cuda") else "cpu"
        switches = (row["method"], row["checkpointing"], row["fused_ce"], row["precision"])
        setup = Setup(row["micro_batch"], row["length"], *switches, device=device)
        out.append((config.model_type, Shapes.of(config), setup, float(row["peak_bytes"])))
    return out


def memory_table(models: list[str], setups: list[Setup], gpu_peaks: Path | str | None = None, echo=print) -> list:
    """Predictions for every model x setup, printed one line each; the CPU calibration of each family and switch
    set runs once (and is rescaled to the matching rows of ``gpu_peaks`` if any)."""
    from refine.bench.models import bench_config

    measured = measured_runs(gpu_peaks) if gpu_peaks else []
    calibrations, rows = {}, []
    for name in models:
        for setup in setups:
            config = bench_config(name, fused_ce=setup.fused_ce, fused_modules=True)
            key = (config.model_type, setup.switches)
            if key not in calibrations:
                calibrations[key] = calibrate_cpu(config.model_type, setup)
                same = [run[1:] for run in measured if (run[0], run[2].switches) == key]
                if same:
                    calibrations[key] = rescale(calibrations[key], same, f"{len(same)} measured rows of {gpu_peaks}")
            shapes = Shapes.of(config)
            row = {"model": name, **dataclasses.asdict(setup), **predict(shapes, setup, calibrations[key])}
            row["calibration"] = calibrations[key].source
            rows.append(row)
            echo(format_prediction(row))
    return rows


def format_prediction(row: dict) -> str:
    """One readable line per prediction."""
    gib = 2**30
    switches = f"ckpt {'on' if row['checkpointing'] else 'off'}, fused CE {'on' if row['fused_ce'] else 'off'}"
    where = f"FSDP x{row['world']}" if row["world"] > 1 else "1 GPU"
    return (
        f"{row['model']} {row['method']} L={row['length']} B={row['micro_batch']} {row['precision']} ({switches}), "
        f"{where}: {row['peak_bytes'] / gib:.1f} GiB (static {row['static_bytes'] / gib:.1f} + activations "
        f"{row['activation_bytes'] / gib:.1f}); fits: {', '.join(row['fits']) or 'none of ' + '/'.join(GPU_MIB)}"
    )
