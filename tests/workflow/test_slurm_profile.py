"""The SLURM profiles, at three levels (docs: README "Running on a SLURM cluster"):

(a) `snakemake -n --workflow-profile workflow/profiles/slurm --configfile config/paper.yaml` parses and every
    training/evaluation job carries the GPU count and runtime of the profile (needs no SLURM at all);
(b) the sbatch command snakemake-executor-plugin-slurm 2.8.0 builds from the profile's resources asks for the
    right GPUs, CPUs, memory and time (internal plugin functions, hence the pinned version);
(c) `-m slurm`: on a real local SLURM (tests/slurm/start_local_slurm.sh) a 2-"GPU" rule submitted through the
    executor plugin with the slurm-ci profile starts a torchrun world of 2 (gloo on CPU) and trains one step, and
    the script's `restart` (CI's first step) ends the jobs an earlier run left.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "workflow" / "profiles"
SLURM_PROFILE = PROFILES / "slurm"
CI_PROFILE = PROFILES / "slurm-ci"
PROBE = REPO / "tests" / "slurm" / "ddp_probe.py"
VENV_BIN = str(Path(sys.executable).parent)

PLUGIN_VERSION = "2.8.0"

# The paper-scale GPU layout the slurm profile must give (spec sections 5-6: 8 GPUs for mid- and
# post-training, 4 for test-time training, 1 for plain evaluation; no GPU for downloads).
EXPECTED_GPUS = {
    "train_mid": 8,
    "train_post": 8,
    "ttt_qa": 4,
    "ttt_longbench": 4,
    "eval_niah": 1,
    "eval_qa": 1,
    "eval_qa_post": 1,
    "eval_longbench": 1,
    "eval_short": 1,
    "base_model": 0,
}
GPU_RULES = [r for r, n in EXPECTED_GPUS.items() if n > 0]


def load_profile(path: Path) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text())


def runtime_minutes(value) -> int:
    from snakemake.resources import Resource  # snakemake's own parser ("24h" -> 1440)

    return Resource.parse_human_friendly("runtime", value)


def profile_resources(profile: dict, rule: str) -> dict:
    """What the profile gives `rule`: default-resources overlaid by set-resources (runtime in minutes)."""
    res = {k: v for k, v in profile.get("default-resources", {}).items() if not k.startswith("slurm_")}
    res.update(profile.get("set-resources", {}).get(rule, {}))
    if "runtime" in res:
        res["runtime"] = runtime_minutes(res["runtime"])
    return res


# --------------------------------------------------------------------------------------------------
# profile files themselves
# --------------------------------------------------------------------------------------------------


def test_slurm_profile_layout():
    prof = load_profile(SLURM_PROFILE)
    assert prof["executor"] == "slurm"
    assert prof["rerun-incomplete"] is True
    assert prof["retries"] >= 1
    assert prof["jobs"] >= 1
    defaults = prof["default-resources"]
    # cpus_per_task here would override every rule's threads (spec 13.6)
    assert "cpus_per_task" not in defaults
    assert "REFINE_SLURM_ACCOUNT" in str(defaults["slurm_account"])
    assert "REFINE_SLURM_PARTITION" in str(defaults["slurm_partition"])
    for rule, gpus in EXPECTED_GPUS.items():
        res = profile_resources(prof, rule)
        assert res.get("gpu", 0) == gpus, rule
        assert res["runtime"] > 0, rule
        # one task per job: torchrun spawns the ranks (plugin >= 2.7.1, issues #316/#459)
        assert "tasks" not in res and "tasks_per_gpu" not in res, rule
    assert profile_resources(prof, "train_mid")["runtime"] >= 24 * 60


def test_slurm_ci_profile_layout():
    prof = load_profile(CI_PROFILE)
    assert prof["executor"] == "slurm"
    # no slurmdbd on the local cluster: sacct cannot answer and the run would hang
    assert prof["slurm-status-command"] == "squeue"
    assert prof["slurm-init-seconds-before-status-checks"] == 2
    assert prof["default-resources"]["slurm_partition"] == "debug"
    assert "slurm_account" not in prof["default-resources"]
    assert "cpus_per_task" not in prof["default-resources"]
    # the local node has 2 fake GPUs: nothing may ask for more
    assert all(r.get("gpu", 0) <= 2 for r in prof["set-resources"].values())
    # training runs as one process so the workflow's records equal the local run's (test_smoke_workflow)
    assert prof["set-resources"]["train_mid"]["gpu"] == 1


def test_no_default_profile_overrides_the_cluster_profile():
    """workflow/profiles/default would override --profile key by key; if present it must stay neutral."""
    default = PROFILES / "default" / "config.yaml"
    if not default.exists():
        return
    keys = set(yaml.safe_load(default.read_text()) or {})
    forbidden = {
        "executor",
        "jobs",
        "cores",
        "default-resources",
        "set-resources",
        "resources",
        "set-threads",
    }
    assert not keys & forbidden, f"{default} sets {sorted(keys & forbidden)}"


# --------------------------------------------------------------------------------------------------
# (a) dry run of the paper config through the slurm profile
# --------------------------------------------------------------------------------------------------

JOB_RE = re.compile(r"^rule (?P<rule>\w+):\n(?P<body>(?:    .*\n)+)", re.MULTILINE)


def dry_run_jobs(stdout: str) -> list[tuple[str, dict]]:
    """(rule, resources) for every job in `snakemake -n` output."""
    jobs = []
    for m in JOB_RE.finditer(stdout):
        res = {}
        for line in m["body"].splitlines():
            line = line.strip()
            if line.startswith("resources:"):
                for item in line[len("resources:") :].split(", "):
                    key, _, value = item.strip().partition("=")
                    res[key] = value
        jobs.append((m["rule"], res))
    return jobs


def longbench_override() -> list[str]:
    """--config pointing LongBench at the default config's folder (so its rules join the DAG); [] if absent."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    shared = (REPO / default["longbench"]["local_dir"]).resolve()  # relative to the repository
    section = (yaml.safe_load((REPO / "config" / "paper.yaml").read_text()) or {}).get("longbench") or {}
    key = next((k for k in ("local_dir", "path") if k in section), None)
    if not shared.is_dir() or key is None:
        return []
    return ["--config", f"longbench={json.dumps({key: str(shared)})}"]


@pytest.mark.parametrize("with_longbench", [False, True], ids=["paper", "paper+longbench"])
def test_paper_dry_run_with_slurm_profile(with_longbench):
    paper = REPO / "config" / "paper.yaml"
    assert paper.exists(), "config/paper.yaml is missing"
    extra = longbench_override() if with_longbench else []
    if with_longbench and not extra:
        pytest.skip("the default config's LongBench folder is absent: LongBench rules stay out of the DAG")
    env = {**os.environ, "REFINE_SLURM_ACCOUNT": "acct_test", "REFINE_SLURM_PARTITION": "part_test"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--workflow-profile",
            str(SLURM_PROFILE),
            "--configfile",
            "config/paper.yaml",
            *extra,
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = dry_run_jobs(proc.stdout)
    seen = {rule for rule, _ in jobs}
    must = {"train_mid", "train_post", "eval_niah", "eval_qa", "ttt_qa", "base_model"}
    if with_longbench:
        must |= {"eval_longbench", "ttt_longbench"}
    assert must <= seen, sorted(must - seen)
    # GPU jobs share Triton's autotune cache on the (shared) results storage
    assert "TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/results/.triton} torchrun" in proc.stdout
    prof = load_profile(SLURM_PROFILE)
    # a new training/evaluation rule must get its GPUs from the profile, not run on a CPU node by default
    compute = {r for r in seen if r.startswith(("train_", "eval_", "ttt_"))}
    assert compute <= set(prof["set-resources"]), (
        f"not in the slurm profile: {sorted(compute - set(prof['set-resources']))}"
    )
    for rule, res in jobs:
        if rule not in EXPECTED_GPUS:
            continue
        want = profile_resources(prof, rule)
        assert int(res.get("gpu", 0)) == EXPECTED_GPUS[rule], (rule, res)
        assert int(res["runtime"]) == want["runtime"], (rule, res)
        assert res["slurm_account"] == "acct_test", (rule, res)
        assert res["slurm_partition"] == "part_test", (rule, res)
        assert "cpus_per_task" not in res, (rule, res)


def test_profile_account_and_partition_unset_give_empty_values(tmp_path):
    """Unset REFINE_SLURM_* must mean "cluster default" (empty), never the literal '$REFINE_SLURM_...'."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent("""\
        rule train_mid:
            output: "x"
            resources: gpu=0
            shell: "touch {output}"
        """)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINE_SLURM_")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", str(SLURM_PROFILE)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [(_rule, res)] = dry_run_jobs(proc.stdout)
    assert res["slurm_account"] == "" and res["slurm_partition"] == "", res
    assert res["gpu"] == "8" and res["runtime"] == str(24 * 60), res


# --------------------------------------------------------------------------------------------------
# (b) the sbatch command the plugin builds
# --------------------------------------------------------------------------------------------------


def test_plugin_version_is_pinned():
    assert importlib.metadata.version("snakemake-executor-plugin-slurm") == PLUGIN_VERSION, (
        "tests below call the plugin's internal submit_string/utils functions: re-check them before bumping"
    )


def mock_job(rule: str, resources: dict, threads: int = 1) -> MagicMock:
    """A job as the plugin sees it (the same MagicMock shape as the plugin's own tests/tests.py)."""
    res = MagicMock()
    res.get.side_effect = lambda key, default=None: resources.get(key, default)
    for key, value in resources.items():
        setattr(res, key, value)
    job = MagicMock()
    job.name = rule
    job.resources = res
    job.threads = threads
    job.wildcards = {}
    job.is_group.return_value = False
    job.jobid = 1
    return job


def sbatch_for(rule: str, resources: dict, threads: int = 1) -> str:
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = mock_job(rule, resources, threads)
    params = {
        "run_uuid": "refine_test",
        "slurm_logfile": "/tmp/slurm-%j.log",
        "comment_str": f"rule_{rule}",
        "account": " -A acct_test",
        "partition": " -p part_test",
        "workdir": "/work/dir",
    }
    return get_submit_command(job, params) + set_gres_string(job)


@pytest.mark.parametrize("rule", GPU_RULES)
def test_sbatch_for_gpu_rules(rule):
    res = profile_resources(load_profile(SLURM_PROFILE), rule)
    call = sbatch_for(rule, res, threads=4)
    n = EXPECTED_GPUS[rule]
    assert call.startswith("sbatch --parsable")
    assert call.endswith(f" --gpus={n}"), call
    assert f" -t {res['runtime']}" in call
    assert f" --mem {res['mem_mb']}" in call
    assert " -A acct_test" in call and " -p part_test" in call
    assert f"--cpus-per-gpu={res['cpus_per_gpu']}" in call
    # ONE task: torchrun, not srun, starts the ranks
    assert "--ntasks" not in call and "--cpus-per-task" not in call, call


def test_sbatch_for_cpu_rule():
    res = profile_resources(load_profile(SLURM_PROFILE), "base_model")
    call = sbatch_for("base_model", res, threads=2)
    assert "--gpus" not in call and "--gres" not in call
    assert "--ntasks=1" in call and "--cpus-per-task=2" in call
    assert f" -t {res['runtime']}" in call


def test_sbatch_gpu_model_and_gres_variants():
    assert sbatch_for("train_mid", {"gpu": 8, "gpu_model": "a100"}).endswith(" --gpus=a100:8")
    call = sbatch_for("train_mid", {"gres": "gpu:2"}, threads=2)
    assert call.endswith(" --gres=gpu:2") and "--ntasks" not in call


def test_ci_profile_sbatch_fits_the_local_node():
    call = sbatch_for("train_mid", profile_resources(load_profile(CI_PROFILE), "train_mid"), threads=1)
    assert call.endswith(" --gpus=1") and " -t 30" in call
    assert "--ntasks" not in call


# --------------------------------------------------------------------------------------------------
# (c) a real local SLURM: torchrun world of 2 inside one 2-"GPU" job
# --------------------------------------------------------------------------------------------------


def queue_state() -> str:
    """squeue and the node's state, for a failure message (a job that never ran waited behind something)."""
    lines = []
    for cmd in (["squeue", "-a", "-o", "%i %j %T %M %l %R"], ["sinfo", "-N", "-o", "%N %T %C %G"]):
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15)
        lines.append("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    return "\n" + "\n".join(lines)


PROBE_SNAKEFILE = """\
# A one-rule workflow shaped like the real train_mid: portable gpu=0 default, the profile raises it,
# the launcher picks torchrun for gpu > 1 (as workflow/rules/common.smk does).


def launcher(wildcards, resources):
    if resources.gpu > 1:
        return f"torchrun --standalone --nproc_per_node={{resources.gpu}}"
    return "python"


rule all:
    input:
        "results/ddp.json",


rule train_mid:
    input:
        script="{probe}",
    output:
        "results/ddp.json",
    log:
        "results/logs/train_mid.log",
    resources:
        gpu=0,
    params:
        launcher=launcher,
    shell:
        "{{params.launcher}} {{input.script}} {{output}} > {{log}} 2>&1"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_local_slurm_torchrun_world_of_two(tmp_path, local_slurm):
    (tmp_path / "Snakefile").write_text(PROBE_SNAKEFILE.format(probe=PROBE))
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            "timeout",
            "-s",
            "KILL",
            "300",
            sys.executable,
            "-m",
            "snakemake",
            "--workflow-profile",
            str(CI_PROFILE),
            "--set-resources",  # the probe asks for both fake GPUs (the CI profile trains on one)
            "train_mid:gpu=2",
            "train_mid:cpus_per_gpu=1",
        ],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    log = tmp_path / "results" / "logs" / "train_mid.log"
    assert proc.returncode == 0, (
        f"rc={proc.returncode} after {elapsed:.0f}s\n{out[-4000:]}\n"
        + (log.read_text()[-3000:] if log.exists() else "")
        + queue_state()
    )
    print(f"local SLURM torchrun workflow: {elapsed:.1f} s")

    result = json.loads((tmp_path / "results" / "ddp.json").read_text())
    assert result["world_size"] == 2
    assert result["max_weight_diff_across_ranks"] == 0.0
    assert result["max_error_vs_reference_step"] < 1e-6  # gradients were averaged over both ranks
    assert result["weight_change"] > 1e-4  # a step was taken
    ranks = result["ranks"]
    assert [r["RANK"] for r in ranks] == ["0", "1"]
    assert all(r["WORLD_SIZE"] == "2" for r in ranks)
    job_ids = {r["SLURM_JOB_ID"] for r in ranks}
    assert len(job_ids) == 1 and None not in job_ids, ranks  # both ranks in one SLURM job
    assert all(r["CUDA_VISIBLE_DEVICES"] == "0,1" for r in ranks), ranks  # SLURM gave it both fake GPUs

    # The job SLURM ran asked for 2 GPUs (MinJobAge keeps it visible to scontrol).
    [job_id] = job_ids
    show = subprocess.run(["scontrol", "show", "job", job_id], check=False, capture_output=True, text=True, timeout=15)
    assert "TresPerJob=gres:gpu:2" in show.stdout, show.stdout
    assert "CpusPerTres=gres:gpu:1" in show.stdout, show.stdout  # cpus_per_gpu, as in the paper profile
    assert "Partition=debug" in show.stdout


def _run(*cmd: str, timeout: int = 30) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout


@pytest.mark.slurm
def test_restart_ends_the_jobs_of_an_earlier_run(local_slurm):
    """`start_local_slurm.sh restart` (CI's first step) leaves an empty queue, an idle node and no process of a job
    that was running: a leftover job can neither hold the fake GPUs nor take the CPU from the tests."""
    if os.geteuid() != 0:
        pytest.skip("the restart runs the daemons as root")
    marker = f"sleep {600 + os.getpid() % 97}"  # a command line no other process has
    job = _run("sbatch", "--parsable", "-p", "debug", "-o", "/dev/null", "--wrap", marker).strip().split(";")[0]
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-f", marker], check=False, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"job {job} did not start{queue_state()}"
        time.sleep(0.5)
    _run("bash", str(REPO / "tests" / "slurm" / "start_local_slurm.sh"), "restart", timeout=300)
    assert _run("squeue", "-h", "-o", "%i").split() == [], queue_state()
    assert _run("sinfo", "-h", "-p", "debug", "-o", "%T").strip().startswith("idle"), queue_state()
    leftover = subprocess.run(["pgrep", "-af", marker], check=False, capture_output=True, text=True).stdout
    assert not leftover, f"processes of job {job} survived the restart: {leftover}"
