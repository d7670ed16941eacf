"""Static workflow checks: dry runs of every config, lint, snakefmt, schema and cross-key rejections by name,
configs standing on their own, hostile config values kept inert, model names round-tripping."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from refine.experiment import BASE_SHORT, parse_model

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml"]


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run(configfile):
    proc = snakemake("all", "ablations", "-n", "--cores", "2", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_mid" in proc.stdout


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_snakefmt_check():
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_misspelled_key_is_rejected_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experimnet: oops\n")
    proc = snakemake("-n", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "experimnet" in proc.stdout + proc.stderr


def test_every_model_name_of_the_default_dag_parses_back():
    """Every model the default DAG (all + ablations) builds or evaluates is a name refine.experiment parses and
    rebuilds: a pattern renamed there is renamed everywhere."""
    proc = snakemake("all", "ablations", "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = set(re.findall(r"results/default/(?:models|evals|train)/(?:deltanet|lact)/([^/\s,;]+)", proc.stdout))
    names.remove(BASE_SHORT)  # the LaCT's short pretraining phase: a checkpoint on the way to `base`, no model name
    stages = {parse_model(name).stage for name in names}
    assert all(parse_model(name).name == name for name in names)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # the schema's defaults, as the DAG's
    seeds = cfg["ablations"]["seeds"] or [cfg["seed"]]
    mids = 2 * len(cfg["mid_seeds"]) + len(cfg["ablations"]["mid_methods"]) * len(seeds)  # sft, refine; variants
    posts = 2 * len(cfg["lengths"]) * 3  # QA tasks x lengths x post methods
    assert stages == {"base", "mid", "post"} and len(names) == 1 + mids + posts, sorted(names)


def _with_override(tmp_path: Path, override: dict, *args: str) -> subprocess.CompletedProcess:
    """Dry run of the smoke config with `override` merged over it (a second --configfile)."""
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    return snakemake(*args, "-n", "--cores", "1", "--configfile", "config/smoke.yaml", str(path))


@pytest.mark.parametrize(
    "override, named",
    [
        ({"base": {"tiny": {"deltanet": {"hiden_size": 64}}}}, "hiden_size"),
        ({"pretrain": {"model": {"hidden_size": 64}}}, "'model'"),
        ({"corpus": {"style_weights": {"prosee": 1.0}}}, "prosee"),
        ({"pretrain_corpus": {"length": 200}}, "should not be valid under {'required': ['length']}"),
        ({"pretrain_corpus": {"by_arch": {"mamba": {}}}}, "'mamba' is not one of ['deltanet', 'lact']"),
        ({"pretrain_corpus": {"by_arch": {"lact": {"seeed": 1}}}}, "seeed"),
        ({"length_labels": ["4K", "8K", "16K"]}, "length_labels: 3 labels for 2 lengths"),
        (
            {"lengths": [512, 512], "length_labels": ["4K", "8K"]},
            "Failed validating 'uniqueItems' in schema['properties']['lengths']",
        ),
        ({"mid": {"micro_batch_size": 4}}, "mid.micro_batch_size: 4 sequences exceed mid.batch_size (2)"),
        (
            {"post": {"refine": {"mini_batch_size": 3}}},
            "post.refine.mini_batch_size: 3 sequences exceed post.batch_size",
        ),
        ({"ttt": {"micro_batch_size": 16}}, "ttt.micro_batch_size: 16 sequences exceed evaluation.batch_size (8)"),
        ({"base": {"hub": {"lact": "a/b'; touch x"}}}, "a/b'; touch x"),
        ({"length_labels": ["4K", "8K $(id)"]}, "8K $(id)"),
    ],
)
def test_schema_holes_are_rejected_at_dag_build_by_name(tmp_path, override, named):
    proc = _with_override(tmp_path, override)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]


def test_paper_config_takes_nothing_from_the_tiny_default():
    """Each config stands on its own: the paper's commands carry none of config/config.yaml's CPU caps."""
    proc = snakemake("all", "-n", "-p", "--cores", "1", "--configfile", "config/paper.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shells = [line for line in proc.stdout.splitlines() if line.startswith("Shell command: ")]
    cfgs = [json.loads(shlex.split(s)[shlex.split(s).index("--cfg") + 1]) for s in shells if " --cfg " in s]
    longbench = [c for c in cfgs if "tasks" in c and "max_examples" in c]
    mid = [c for c in cfgs if "val_every" in c]
    assert longbench and all(c["max_examples"] is None for c in longbench)  # the default caps it at 8
    assert mid and all("val_max_docs" not in c for c in mid)  # the default uses 4 documents
    corpus = [c for c in cfgs if c.get("hub_repo") == "DKYoon/SlimPajama-6B"]  # its length: mid.max_length
    assert [c["length"] for c in corpus] == [mid[0]["max_length"]] == [16384]


def _corpus_cfgs(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    """The --cfg of the printed `refine data corpus` commands, by output file name."""
    cfgs = {}
    for line in proc.stdout.splitlines():
        if line.startswith("Shell command: refine data corpus "):
            argv = shlex.split(line.removeprefix("Shell command: "))
            cfgs[Path(argv[argv.index("--out") + 1]).name] = json.loads(argv[argv.index("--cfg") + 1])
    return cfgs


@pytest.mark.parametrize("length", [None, 200])
def test_corpus_length_reaches_the_corpus_and_not_the_tokenizer_text(tmp_path, length):
    """Unset, `corpus.length` follows mid.max_length; the tokenizer's text (sized in words) never carries it,
    so setting it does not retrain the tokenizer."""
    proc = _with_override(tmp_path, {"corpus": {"length": length}} if length else {}, "all", "-p", "-F")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfgs = _corpus_cfgs(proc)
    smoke = yaml.safe_load(Path("config/smoke.yaml").read_text())
    assert cfgs["train.parquet"]["length"] == (length or smoke["mid"]["max_length"])
    assert "length" not in cfgs["tokenizer.parquet"]
    assert {k: v for k, v in cfgs["train.parquet"].items() if k != "length"} == cfgs["tokenizer.parquet"]


def test_by_arch_pretrain_fields_reach_that_arch_s_corpus_alone(tmp_path):
    """`pretrain_corpus.by_arch.<arch>` changes that arch's pretraining documents and no other's."""
    mix = {"prose": 1, "qa": 1}
    proc = _with_override(
        tmp_path, {"pretrain_corpus": {"by_arch": {"lact": {"style_weights": mix}}}}, "all", "-p", "-F"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfgs = _corpus_cfgs(proc)
    lact, deltanet = cfgs.pop("pretrain_lact.parquet"), cfgs.pop("pretrain_deltanet.parquet")
    assert lact["style_weights"] == mix != deltanet["style_weights"]
    assert {k: v for k, v in lact.items() if k != "style_weights"} == {
        k: v for k, v in deltanet.items() if k != "style_weights"
    }
    assert "by_arch" not in lact and "--data results/smoke/corpus/pretrain_lact.parquet" in proc.stdout


def test_the_long_phase_continues_the_short_phase_s_model_on_its_own_documents(tmp_path):
    """`pretrain_long.archs` (the smoke config's: lact) pretrain in two jobs, the second from the first's
    checkpoint on documents of pretrain_long.max_length; the other archs' base model is one job, as before."""
    proc = _with_override(tmp_path, {}, "all", "-p", "-F")
    assert proc.returncode == 0, proc.stderr[-3000:]
    smoke = yaml.safe_load(Path("config/smoke.yaml").read_text())
    long = smoke["pretrain_long"]
    assert long["archs"] == ["lact"]
    runs = {}
    for line in proc.stdout.splitlines():
        if "--stage pretrain " in line:
            argv = shlex.split(line.removeprefix("Shell command: ").split(" > ")[0])
            runs[argv[argv.index("--out") + 1]] = argv
    R = "results/smoke"
    short, whole, longer = (f"{R}/models/{m}" for m in ("lact/base_short", "deltanet/base", "lact/base"))
    assert sorted(runs) == sorted([short, whole, longer])
    assert "--base" not in runs[short] and "--base" not in runs[whole]
    argv = runs[longer]
    assert argv[argv.index("--base") + 1] == short
    assert argv[argv.index("--data") + 1] == f"{R}/corpus/pretrain_long_lact.parquet"
    cfg = json.loads(argv[argv.index("--cfg") + 1])
    assert cfg["max_length"] == long["max_length"] and cfg["steps"] == long["steps"]
    assert not {"archs", "corpus", "model"} & set(cfg)
    corpus = _corpus_cfgs(proc)["pretrain_long_lact.parquet"]
    assert corpus == _corpus_cfgs(proc)["pretrain_lact.parquet"] | long["corpus"] | {"length": long["max_length"]}


def test_hostile_config_values_reach_the_job_literally_and_run_nothing(tmp_path):
    """Quotes, `;` and `$()` in config values: the printed commands, run with a stand-in `refine` that records
    its arguments, execute nothing else and hand the job the literal value."""
    hostile = 'lb\'; touch PWNED1; echo "$(touch PWNED2)" `touch PWNED3`'
    work = tmp_path / "work"
    (work / hostile).mkdir(parents=True)  # a legitimate directory name
    override = {"experiment": "hostile", "longbench": {"local_dir": str(work / hostile)},
                "qa": {"local_dir": hostile}, "base": {"tiny": {"lact": {"hidden_act": hostile}}}}  # fmt: skip
    proc = _with_override(tmp_path, override, "all", "-p")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shells = [line.removeprefix("Shell command: ") for line in proc.stdout.splitlines()]
    chosen = [s for s in shells if any(f"refine data {w} " in s for w in ("longbench", "qa"))]
    chosen += [s for s in shells if "--stage pretrain --arch lact" in s]  # its short and long phases
    assert len(chosen) == 5, chosen
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "refine").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "open(os.environ['ARGV_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    (fake / "refine").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "ARGV_LOG": str(tmp_path / "argv.jsonl")}
    for command in chosen:
        log = shlex.split(command)[shlex.split(command).index(">") + 1]
        (work / log).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["bash", "-c", command], cwd=work, env=env, check=True)
    assert not list(tmp_path.rglob("PWNED*"))
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    cfgs = [json.loads(argv[argv.index("--cfg") + 1]) for argv in calls]
    assert [c["local_dir"] for c in cfgs if "tasks" in c and "max_examples" in c] == [str(work / hostile)]
    assert [c["local_dir"] for c in cfgs if "answer_reserve" in c] == [hostile, hostile]
    assert [c["model"]["hidden_act"] for c in cfgs if isinstance(c.get("model"), dict)] == [hostile]


@pytest.mark.parametrize("family, rule", [("niah", "eval_niah"), ("qa", "eval_qa"), ("longbench", "eval_longbench")])
def test_ablations_are_evaluated_in_their_family(tmp_path, family, rule):
    """`ablations.family` picks the cells the ablation variants are evaluated on (the report averages that
    family): every variant gets its family's evaluation job per arch; the TTT variant runs on LongBench only."""
    proc = _with_override(tmp_path, {"ablations": {"family": family}}, "ablations", "-p", "-F")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = re.findall(r"rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]*)", proc.stdout)
    variants = yaml.safe_load(Path("config/smoke.yaml").read_text())["ablations"]["mid_methods"]
    for variant in variants:
        assert [r for r, w in jobs if f"model=mid-{variant}-s0" in w] == [rule, rule], (variant, jobs)
    assert any("ttt=refine_cosine" in w for _, w in jobs) == (family == "longbench")


def test_ablation_variants_train_and_evaluate_at_ablations_seeds(tmp_path):
    """Each variant is trained and evaluated at each of `ablations.seeds` (default: `seed` alone)."""
    variants = yaml.safe_load(Path("config/smoke.yaml").read_text())["ablations"]["mid_methods"]
    for seeds in (None, [0, 1]):
        override = {"ablations": {"family": "niah", "seeds": seeds}}
        proc = _with_override(tmp_path, override, "ablations", "-p", "-F")
        assert proc.returncode == 0, proc.stderr[-3000:]
        jobs = re.findall(r"rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]*)", proc.stdout)
        for variant in variants:
            patterns = {"train_mid": rf"method={variant}, seed=(\d+)", "eval_niah": rf"model=mid-{variant}-s(\d+)"}
            for rule, pattern in patterns.items():
                seen = {int(m) for r, w in jobs if r == rule for m in re.findall(pattern, w)}
                assert seen == set(seeds or [0]), (variant, rule, jobs)
