"""The memory model of `refine bench memory`: shapes, the least-squares calibration, and its predictions
against peaks measured on CPU at scales it was not fitted on."""

import json
from pathlib import Path

import pytest

from refine.bench import memory
from refine.bench.memory import (
    CALIBRATION_SIZES,
    FEATURES,
    GPU_MIB,
    Calibration,
    Setup,
    Shapes,
    calibrate_cpu,
    family_overrides,
    fit,
    measure_peak,
    predict,
    rescale,
    static_bytes,
)
from refine.bench.models import bench_config
from refine.bench.steps import StepBench
from refine.cli import main
from refine.models import DeltaNetForCausalLM

# CALIBRATION_SIZES at a quarter of the lengths, so that the test is fast
SMALL_SIZES = tuple((n, d, v, length // 4, b) for n, d, v, length, b in CALIBRATION_SIZES)


def test_shapes_count_the_real_model():
    config = bench_config("deltanet-tiny", fused_ce=False, fused_modules=False)
    model = DeltaNetForCausalLM(config)
    shapes = Shapes.of(config)
    assert shapes.params == sum(p.numel() for p in model.parameters())
    assert shapes.block_params == sum(p.numel() for p in model.model.layers[0].parameters())
    assert (shapes.layers, shapes.hidden, shapes.vocab) == (2, 128, 512)
    paper = Shapes.of(bench_config("deltanet-1.3b", fused_ce=True, fused_modules=True))
    assert 1.3e9 < paper.params < 1.45e9  # fla-hub/delta_net-1.3B-100B


def test_static_bytes_shard_the_optimizer_state_over_fsdp_ranks():
    shapes = Shapes.of(bench_config("deltanet-1.3b", fused_ce=True, fused_modules=True))
    one = static_bytes(shapes, Setup(2, 16384, precision="fp32"))
    eight = static_bytes(shapes, Setup(2, 16384, precision="fp32", world=8))
    assert one == 16 * shapes.params
    assert 16 * shapes.params / 8 < eight < 16 * shapes.params / 8 + 8 * (2 * shapes.block_params + 2 * 32000 * 2048)


def test_calibration_sizes_determine_every_coefficient():
    shapes = {size: Shapes(10**6, 10**6, 10**5, size[0], size[1], size[2]) for size in CALIBRATION_SIZES}
    truth = Calibration((50.0, 30.0, 8.0, 1000.0, 2e6), "truth")
    runs = []
    for size, s in shapes.items():
        setup = Setup(size[4], size[3], precision="fp32", device="cpu")
        runs.append((s, setup, static_bytes(s, setup) + truth.activation_bytes(s, setup)))
    fitted = fit(runs, "synthetic")
    assert len(fitted.coef) == len(FEATURES)
    assert fitted.coef == pytest.approx(truth.coef, rel=1e-6)
    halved = [(s, setup, static_bytes(s, setup) + truth.activation_bytes(s, setup) / 2) for s, setup, _ in runs]
    assert rescale(fitted, halved, "half").scale == pytest.approx(0.5)


def test_prediction_picks_the_gpus_it_fits_and_the_optimizer_floor():
    shapes = Shapes.of(bench_config("deltanet-1.3b", fused_ce=True, fused_modules=True))
    none = Calibration((0.0,) * len(FEATURES), "none")
    cuda = predict(shapes, Setup(2, 16384), none)
    assert cuda["peak_bytes"] == static_bytes(shapes, Setup(2, 16384)) + 4 * shapes.params  # foreach AdamW's sqrt
    assert cuda["fits"] == ["48GB", "80GB", "141GB"]
    huge = Calibration((0.0, 0.0, 0.0, 0.0, 200 * 2.0**30), "200 GiB")
    assert predict(shapes, Setup(2, 16384), huge)["fits"] == []
    assert set(GPU_MIB) == {"24GB", "48GB", "80GB", "141GB"}


@pytest.mark.parametrize(
    ("model_type", "checkpointing"),
    [
        ("delta_net", True),  # the paper's switches: checkpointing and fused linear CE on
        pytest.param("delta_net", False, marks=pytest.mark.slow),
        pytest.param("lact_swiglu", True, marks=pytest.mark.slow),
        pytest.param("lact_swiglu", False, marks=pytest.mark.slow),
    ],
)
def test_prediction_is_within_20_percent_of_measured_cpu_peaks(model_type, checkpointing):
    setup = Setup(1, 256, checkpointing=checkpointing, fused_ce=checkpointing, precision="fp32", device="cpu")
    calibration = calibrate_cpu(model_type, setup, SMALL_SIZES)
    for size in ((3, 256, 1024, 384, 1), (2, 384, 768, 256, 2)):  # more layers, wider, longer than any fitted run
        shapes, run, peak = measure_peak(model_type, size, setup)
        assert predict(shapes, run, calibration)["peak_bytes"] == pytest.approx(peak, rel=0.2)


def test_cli_prints_predictions_rescaled_to_measured_peaks(monkeypatch, tmp_path, capsys):
    fitted = Calibration((100.0, 50.0, 8.0, 0.0, 0.0), "fixed")
    monkeypatch.setattr(memory, "calibrate_cpu", lambda model_type, setup: fitted)
    spec = StepBench("deltanet-tiny", 1024, "sft", 2, "fp32", False, False, False)
    shapes, setup = Shapes.of(spec.config()), Setup(2, 1024, "sft", False, False, "fp32")
    seen = static_bytes(shapes, setup) + 0.5 * fitted.activation_bytes(shapes, setup)
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps({"runs": [{**spec.describe(), "device": "cuda", "status": "ok", "peak_bytes": seen}]}))
    out = tmp_path / "memory.json"
    args = ["--models", "deltanet-tiny", "--lengths", "1024", "--methods", "sft", "--worlds", "1,2"]
    switches = ["--no-checkpointing", "--no-fused-ce", "--precision", "fp32"]
    assert main(["bench", "memory", *args, *switches, "--gpu-peaks", str(gpu), "--json", str(out)]) == 0
    one, two = json.loads(out.read_text())
    assert one["peak_bytes"] == pytest.approx(seen)
    assert (one["world"], two["world"]) == (1, 2) and two["static_bytes"] < one["static_bytes"]
    assert "rescaled x0.50" in one["calibration"] and "fits: 24GB, 48GB, 80GB, 141GB" in capsys.readouterr().out


def test_the_measured_h100_record_reads_and_sits_above_the_static_memory():
    """docs/gpu's record (the README's GPU table) is a `refine bench gpu` JSON that `--gpu-peaks` accepts; each
    measured peak holds the model's static bytes plus activations that are small under checkpointing."""
    runs = memory.measured_runs(Path(__file__).resolve().parents[2] / "docs/gpu/h100-2026-12-05.json")
    assert [(t, s.length, s.micro_batch, s.method) for t, _, s, _ in runs] == [
        ("delta_net", 4096, 1, "sft"),
        ("delta_net", 16384, 2, "sft"),
    ]
    for _, shapes, setup, peak in runs:
        assert shapes.params == 1_365_677_056
        assert 1.0 < peak / static_bytes(shapes, setup) < 1.3


def test_family_members_keep_the_head_sizes():
    assert family_overrides("delta_net", 3, 256, 1024)["num_heads"] == 2
    lact = family_overrides("lact_swiglu", 2, 384, 768)
    assert (lact["num_attn_heads"], lact["num_lact_heads"]) == (6, 3)
