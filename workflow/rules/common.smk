# Shared helpers: result paths, the per-stage --cfg JSON, the launcher, target lists. No experiment logic
# lives here; every rule runs one `refine` command.
import json
import os
import sys

# Jobs run `refine`, installed in the same environment as Snakemake: put that environment's bin first on
# PATH so `.venv/bin/snakemake` works without activating the venv (and SLURM jobs inherit it).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)

R = f"results/{config['experiment']}"
ARCHS = config["archs"]
LENGTHS = config["lengths"]
SEED = config["seed"]
MID_SEEDS = config["mid_seeds"]
LONGBENCH_DIR = config["longbench"]["local_dir"]
NIAH_TASKS = config["niah"]["tasks"]
QA_TASKS = config["qa"]["tasks"]
LONGBENCH_TASKS = config["longbench"]["tasks"]
POST_METHODS = ["sft", "nested_sft", "nested_refine"]
FLA_NAMES = {
    "deltanet": "delta_net",
    "lact": "lact",
}  # model names in ReFINE's RULER-QA file names


wildcard_constraints:
    arch="|".join(ARCHS),
    method="[a-z0-9_]+",
    task="[a-z0-9_\-]+",
    length=r"\d+",
    seed=r"\d+",
    ttt="none|sft|refine|refine_cosine",
    family="niah|qa|longbench",
    model=r"base|mid-[a-z0-9_]+-s\d+|post-[a-z0-9_]+-\d+-[a-z_]+-s\d+",


def cfg_json(section, **extra):
    """A config section (plus extra fields) as one compact JSON object: the command's --cfg."""
    return json.dumps(
        {**config[section], **extra}, separators=(",", ":"), sort_keys=True
    )


def launcher(wildcards, threads, resources):
    """`refine` on <= 1 GPU; torchrun with one process per GPU inside a multi-GPU job (same arguments)."""
    env = f"REFINE_THREADS={threads}"
    if resources.gpu > 1:
        return f"{env} torchrun --standalone --nproc_per_node={resources.gpu} -m refine.cli"
    return f"{env} refine"


def length_label(length):
    return config["length_labels"][LENGTHS.index(int(length))]


def longbench_available():
    """LongBench runs when its local directory exists (or the hub is configured); else it is left out."""
    if config["longbench"]["source"] == "hub":
        return True
    if LONGBENCH_DIR and os.path.isdir(LONGBENCH_DIR):
        return True
    return False


if not longbench_available():
    logger.warning(
        f"LongBench left out: longbench.path={LONGBENCH_DIR!r} is not a directory "
        "(Table 5 and the LongBench ablations are NOT RUN; set longbench.path to run them)"
    )


def model_dir(arch, name):
    return f"{R}/models/{arch}/{name}"


def mid_models(seeds=None, methods=("sft", "refine")):
    return [f"mid-{m}-s{s}" for m in methods for s in (seeds or MID_SEEDS)]


def post_models(task, length):
    return [f"post-{task}-{length}-{m}-s{SEED}" for m in POST_METHODS]


def record(arch, model, family, task, length, ttt="none"):
    return f"{R}/evals/{arch}/{model}/{family}/{task}_{length}_ttt-{ttt}.json"


def niah_records(arch, model):
    return [record(arch, model, "niah", t, n) for t in NIAH_TASKS for n in LENGTHS]


def table3_records():
    models = ["base"] + mid_models([SEED])
    return [r for a in ARCHS for m in models for r in niah_records(a, m)]


def table4_records():
    out = []
    for arch in ARCHS:
        for task in QA_TASKS:
            for n in LENGTHS:
                for m in ["base"] + mid_models([SEED]) + post_models(task, n):
                    out.append(record(arch, m, "qa", task, n))
                nested = f"post-{task}-{n}-nested_refine-s{SEED}"
                out += [
                    record(arch, nested, "qa", task, n, t) for t in ("sft", "refine")
                ]
    return out


def longbench_records(models_ttt):
    if not longbench_available():
        return []
    n = LENGTHS[-1]
    return [
        record(a, m, "longbench", t, n, ttt)
        for a in ARCHS
        for m, ttt in models_ttt
        for t in LONGBENCH_TASKS
    ]


def table5_records():
    mid = f"mid-refine-s{SEED}"
    rows = [
        ("base", "none"),
        (f"mid-sft-s{SEED}", "none"),
        (mid, "none"),
        (mid, "sft"),
        (mid, "refine"),
    ]
    return longbench_records(rows)


def ablation_records():
    variants = config["ablations"]["mid_methods"]
    rows = [(f"mid-{v}-s{SEED}", "none") for v in variants]
    rows += [(f"mid-refine-s{SEED}", t) for t in config["ablations"]["ttt"]]
    return longbench_records(rows)


def all_records():
    return table3_records() + table4_records() + table5_records()


def all_models():
    out = [model_dir(a, "base") for a in ARCHS]
    out += [model_dir(a, m) for a in ARCHS for m in mid_models()]
    for arch in ARCHS:
        for task in QA_TASKS:
            for n in LENGTHS:
                out += [model_dir(arch, m) for m in post_models(task, n)]
    return out


def cells(tasks, lengths=LENGTHS):
    """Parallel --task / --length / --length-label lists for the cells tasks x lengths (expand's order)."""
    pairs = [(t, n) for t in tasks for n in lengths]
    return {
        "task": " ".join(t for t, _ in pairs),
        "length": " ".join(str(n) for _, n in pairs),
        "label": " ".join(length_label(n) for _, n in pairs),
    }


def eval_paths(pattern, tasks, lengths=LENGTHS):
    """expand() of a per-cell path over tasks x lengths, keeping the rule's own wildcards."""
    return expand(pattern, task=tasks, length=lengths, allow_missing=True)


def metrics_files(methods=("sft", "refine")):
    return [
        f"{R}/train/{a}/mid-{m}-s{s}/metrics.jsonl"
        for a in ARCHS
        for m in methods
        for s in MID_SEEDS
    ]


def tokenizer_dir(arch):
    """The tiny default trains one BPE on the corpus; the paper uses each checkpoint's own tokenizer."""
    return (
        f"{R}/tokenizer"
        if config["base"]["source"] == "pretrain"
        else model_dir(arch, "base")
    )
