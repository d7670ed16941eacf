"""`refine bench gpu` on CPU: the JSON it writes, its FLOP count, and its guard against failed measurements."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from refine.bench import steps
from refine.bench.models import MODELS, bench_config
from refine.bench.steps import StepBench, matmul_params, run_grid
from refine.cli import main
from refine.models import DeltaNetForCausalLM

REPO = Path(__file__).resolve().parents[2]


def test_bench_config_sets_the_switches_and_knows_the_paper_models():
    config = bench_config("deltanet-1.3b", fused_ce=True, fused_modules=False)
    assert (config.hidden_size, config.num_hidden_layers, config.num_heads, config.vocab_size) == (2048, 24, 16, 32000)
    assert config.fuse_linear_cross_entropy and not config.fuse_norm and not config.fuse_swiglu
    assert {"deltanet-1.3b", "lact-760m", "deltanet-tiny", "lact-tiny"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model"):
        bench_config("gpt-2", fused_ce=False, fused_modules=False)


def test_matmul_params_leave_out_the_input_embedding_only():
    model = DeltaNetForCausalLM(MODELS["deltanet-tiny"]())
    total = sum(p.numel() for p in model.parameters())
    assert matmul_params(model) == total - model.get_input_embeddings().weight.numel()


def test_cli_measures_a_tiny_sft_step_and_records_a_failed_one(tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "gpu", "--models", "deltanet-tiny,no-such-model", "--lengths", "32", "--methods", "sft"]
    assert main([*args, "--steps", "2", "--json", str(out)]) == 1  # one measurement failed
    ok, failed = json.loads(out.read_text())["runs"]
    assert ok["status"] == "ok" and ok["precision"] == "fp32" and ok["micro_batch"] == 2
    assert len(ok["warmup_s"]) == 1 and len(ok["steady_s"]) == 2
    assert ok["tokens_per_s"] == pytest.approx(2 * 32 / ok["step_s"])
    assert ok["model_flops_per_step"] == 6 * ok["matmul_params"] * 2 * 32
    assert ok["mfu"] == pytest.approx(ok["model_flops_per_step"] / (ok["step_s"] * 989e12))
    # weights + two AdamW moments in fp32 are held; the step adds gradients and activations on top
    assert ok["peak_bytes"] > 3 * 4 * ok["params"]
    assert failed["status"] == "error" and "unknown model" in failed["error"]


def test_out_of_memory_retries_with_half_the_micro_batch(monkeypatch, tmp_path):
    real_measure = steps.measure

    def fake_measure(spec, progress):
        if spec.micro_batch > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_measure(spec, progress)

    monkeypatch.setattr(steps, "measure", fake_measure)
    out = run_grid(
        [StepBench("deltanet-tiny", 16, micro_batch=4, precision="fp32")], tmp_path / "b.json", echo=lambda _: None
    )
    assert [(r["micro_batch"], r["status"]) for r in out["runs"]] == [(4, "oom"), (2, "oom"), (1, "ok")]
    assert json.loads((tmp_path / "b.json").read_text()) == out


def test_a_running_measurement_keeps_its_step_times_in_the_json(tmp_path):
    """What a run killed mid-measurement leaves: each finished step is echoed and already in the JSON."""
    path, seen = tmp_path / "b.json", []

    def echo(line):
        seen.append((line, json.loads(path.read_text())["runs"][-1]))

    run_grid([StepBench("deltanet-tiny", 16, precision="fp32", steps=2)], path, echo=echo)
    (warm, at_warm), (steady, at_steady), _, (summary, done) = seen
    assert warm.startswith("  warmup step 1:") and steady.startswith("  steady step 1:")
    assert at_warm["status"] == "running" and len(at_warm["warmup_s"]) == 1 and "steady_s" not in at_warm
    assert at_steady["status"] == "running" and len(at_steady["steady_s"]) == 1
    assert done["status"] == "ok" and "deltanet-tiny sft L=16" in summary


@pytest.mark.slow  # two tiny steps per method with checkpointing and the profiler: a minute on a loaded 2-core machine
def test_gpu_bench_script_runs_a_stage_on_cpu_and_skips_when_out_of_time(tmp_path):
    script, python = str(REPO / "scripts/gpu_bench.sh"), str(REPO / ".venv/bin/python")
    env = {"OUT": str(tmp_path), "PYTHON": python, "PATH": "/usr/bin:/bin", "STAGES": "deltanet_long", "CAP1": "900"}
    done = subprocess.run(["bash", script, "--tiny"], env={**env, "BUDGET": "20000"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    runs = json.loads((tmp_path / "deltanet_long.json").read_text())["runs"]
    assert [(r["model"], r["method"], r["status"]) for r in runs] == [
        ("deltanet-tiny", "sft", "ok"),
        ("deltanet-tiny", "refine", "ok"),
    ]
    done = subprocess.run(["bash", script, "--tiny"], env={**env, "BUDGET": "0"}, capture_output=True, text=True)
    assert done.returncode == 0 and (tmp_path / "summary.txt").read_text().count("skipped") == 1
