# Shared helpers: result paths, the per-stage --cfg JSON, the launcher, target lists, evaluation cells. No
# experiment logic lives here; every rule runs one `refine` command. Names and paths come from
# refine.experiment; every config value that reaches a shell is quoted (shlex / {x:q}).
import json
import os
import shlex
import sys

# Jobs run `refine`, installed in the same environment as Snakemake: put that environment's bin first on
# PATH so `.venv/bin/snakemake` works without activating the venv (and SLURM jobs inherit it).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)


try:  # `import refine` is light (standard library and yaml): DAG building needs no torch
    from refine import experiment as X, version as V, workflow_config
except ImportError as err:
    raise WorkflowError(
        f"the refine package is not installed in Snakemake's environment (pip install -e .): {err}"
    ) from None

# params code=V.command_hash(group): a change to the code `refine <group>` can run reruns the rule
try:  # the cross-key rules the schema cannot state, at DAG build
    workflow_config.check_workflow_config(config)
except ValueError as err:
    raise WorkflowError(f"invalid config: {err}") from None

R = X.results_root(config["experiment"])
ARCHS = config["archs"]
# base models pretrained in two phases (pretrain_long)
LONG_ARCHS = workflow_config.long_pretrain_archs(config)
LENGTHS = config["lengths"]
SEED = config["seed"]
MID_SEEDS = config["mid_seeds"]
ABLATION_SEEDS = config["ablations"]["seeds"] or [SEED]
LONGBENCH_DIR = config["longbench"]["local_dir"]
NIAH_TASKS = config["niah"]["tasks"]
QA_TASKS = config["qa"]["tasks"]
LONGBENCH_TASKS = config["longbench"]["tasks"]
TTT_TRAINED = "|".join(m for m in X.TTT_MODES if m != "none")
FLA_NAMES = {
    "deltanet": "delta_net",
    "lact": "lact",
}  # model names in ReFINE's RULER-QA file names


wildcard_constraints:
    arch="|".join(ARCHS),
    method=X.FIELD_PATTERNS["method"],
    task=r"[a-z0-9_\-]+",
    length=X.FIELD_PATTERNS["length"],
    seed=X.FIELD_PATTERNS["seed"],
    ttt="|".join(X.TTT_MODES),
    family="|".join(X.FAMILIES),
    model=X.name_pattern("base", "mid", "post"),


def cfg_json(section, omit=(), **extra):
    """A config section (its name, or its fields; less `omit`, plus extra fields) as one compact JSON object:
    the command's --cfg (quote it: {x:q})."""
    section = config[section] if isinstance(section, str) else section
    fields = {k: v for k, v in section.items() if k not in omit}
    return json.dumps({**fields, **extra}, separators=(",", ":"), sort_keys=True)


def launcher(wildcards, threads, resources):
    """`refine` on <= 1 GPU; torchrun with one process per GPU inside a multi-GPU job (same arguments).

    GPU jobs keep Triton's compile/autotune cache under results/.triton (shared storage on a cluster, so later
    jobs do not autotune again) unless TRITON_CACHE_DIR is set.
    """
    env = f"REFINE_THREADS={threads}"
    if resources.gpu > 0:
        env += " TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/results/.triton}"
    if resources.gpu > 1:
        return f"{env} torchrun --standalone --nproc_per_node={resources.gpu} -m refine.cli"
    return f"{env} refine"


def length_label(length):
    return config["length_labels"][LENGTHS.index(int(length))]


def longbench_source():
    """local, hub or none, as refine.data.longbench.LongBenchConfig.resolved_source: auto is local when
    longbench.local_dir is a directory, else hub (rule longbench_download). Source local without it stops here.
    """
    source = config["longbench"]["source"]
    local = bool(LONGBENCH_DIR) and os.path.isdir(LONGBENCH_DIR)
    if source == "local" and not local:
        raise WorkflowError(
            f"longbench.source is local but longbench.local_dir={LONGBENCH_DIR!r} is not a directory: point it "
            "at ReFINE's data/longbench, or set longbench.source to auto (download from the hub) or none"
        )
    if source == "auto":
        return "local" if local else "hub"
    return source


LONGBENCH_SOURCE = longbench_source()


def longbench_available():
    return LONGBENCH_SOURCE != "none"


if not longbench_available():
    logger.info(
        "LongBench not configured (longbench.source: none): Table 5 and the LongBench ablations are left out"
    )


def model_dir(arch, name):
    return X.model_dir(R, arch, name)


def mid_models(methods=X.MID_METHODS, seeds=MID_SEEDS):
    return [X.mid_name(m, s) for m in methods for s in seeds]


def base_and_mid_models():
    """The models of Tables 3 and E.1 and the first rows of Table 4: the base and every mid-training seed."""
    return [X.BASE] + mid_models()


def post_models(task, length):
    return [X.post_name(task, length, m, SEED) for m in X.POST_METHODS]


def record(arch, model, family, task, length, ttt="none"):
    return X.record_path(R, arch, model, family, task, length, ttt)


def niah_records(arch, model):
    return [record(arch, model, "niah", t, n) for t in NIAH_TASKS for n in LENGTHS]


def table3_records():
    return [r for a in ARCHS for m in base_and_mid_models() for r in niah_records(a, m)]


def table4_records():
    out = []
    for arch in ARCHS:
        for task in QA_TASKS:
            for n in LENGTHS:
                for m in base_and_mid_models() + post_models(task, n):
                    out.append(record(arch, m, "qa", task, n))
                nested = X.post_name(task, n, "nested_refine", SEED)
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
    mid = X.mid_name("refine", SEED)
    rows = [
        (X.BASE, "none"),
        (X.mid_name("sft", SEED), "none"),
        (mid, "none"),
        (mid, "sft"),
        (mid, "refine"),
    ]
    return longbench_records(rows)


def qa_records(arch, model):
    return [record(arch, model, "qa", t, n) for t in QA_TASKS for n in LENGTHS]


def ablation_models():
    """The mid-trained ablation variants: each of `ablations.mid_methods` at each of `ablations.seeds`."""
    return mid_models(config["ablations"]["mid_methods"], ABLATION_SEEDS)


def ablation_records():
    """The ablation variants' cells in `ablations.family`. The TTT variants (Table E.2) adapt a
    mid-trained model: LongBench cells only (QA's TTT adapts nested post-trained models).
    """
    family = config["ablations"]["family"]
    models = ablation_models()
    if family != "longbench":
        cells = niah_records if family == "niah" else qa_records
        return [r for a in ARCHS for m in models for r in cells(a, m)]
    rows = [(m, "none") for m in models]
    rows += [(X.mid_name("refine", SEED), t) for t in config["ablations"]["ttt"]]
    return longbench_records(rows)


def tableE1_records():
    """Table E.1: the short-context suite's cells on the base and mid-trained models, at the shortest length."""
    cells = config["short_eval"]["tasks"]
    return [
        record(a, m, "short", t, LENGTHS[0])
        for a in ARCHS
        for m in base_and_mid_models()
        for t in cells
    ]


def all_records():
    return table3_records() + table4_records() + table5_records() + tableE1_records()


def all_models():
    out = [model_dir(a, X.BASE) for a in ARCHS]
    out += [model_dir(a, m) for a in ARCHS for m in mid_models()]
    for arch in ARCHS:
        for task in QA_TASKS:
            for n in LENGTHS:
                out += [model_dir(arch, m) for m in post_models(task, n)]
    return out


def metrics_files(models=None):
    """Training metrics of `models` (default: SFT and REFINE at every mid-training seed) of every arch."""
    return [X.metrics_path(R, a, m) for a in ARCHS for m in models or mid_models()]


def corpus_cfg():
    """The corpus section; an unset `length` follows mid.max_length, so mid-training keeps each document whole."""
    length = config["corpus"].get("length", config["mid"].get("max_length"))
    return cfg_json("corpus", **({"length": length} if length else {}))


def pretrain_corpus_cfg(arch, long=False):
    """The pretrain_corpus fields of an arch (its `by_arch` entry over the shared ones;
    `long`: its long phase's, pretrain_long.corpus over those); its documents fit the
    phase's rows (pretrain.max_length or pretrain_long.max_length)."""
    section = workflow_config.pretrain_corpus_section(config, arch, long)
    rows = config["pretrain_long" if long else "pretrain"]["max_length"]
    return cfg_json(section, length=rows)


def tokenizer_dir(arch):
    """The tiny default trains one BPE on synthetic text; the paper uses each checkpoint's own tokenizer."""
    return (
        f"{R}/tokenizer"
        if config["base"]["source"] == "pretrain"
        else model_dir(arch, X.BASE)
    )


# Evaluation cells: one (task, length) each, with its data file and record path as patterns over the rule's
# wildcards ({arch}, {model}, {ttt}, ...). A rule declares them as input/output and passes them to its
# command through cell_args, so the command line is written once.


def eval_data(family, task, length):
    """The evaluation file of a cell (None: lm-eval's built-in NIAH tasks)."""
    if family == "niah":
        if config["niah_eval"]["builtin"]:
            return None
        return f"{R}/data/{{arch}}/niah/{task}_{length}.jsonl"
    if family == "qa":
        return f"{R}/data/{{arch}}/qa/{task}_{length}_test.parquet"
    if family == "short":  # the local tasks' source (lm-eval's own tasks ignore it)
        return f"{R}/corpus/val.parquet"
    return f"{R}/data/longbench/{task}.parquet"


def eval_cells(family, tasks, lengths, model="{model}", ttt="none"):
    """The cells tasks x lengths of one job as (task, length, data, out) patterns."""
    return [
        (t, n, eval_data(family, t, n), record("{arch}", model, family, t, n, ttt))
        for t in tasks
        for n in lengths
    ]


def cell_inputs(cells):
    return list(dict.fromkeys(data for _, _, data, _ in cells if data))


def cell_outputs(cells):
    return [out for _, _, _, out in cells]


def cell_args(cells, model="{model}"):
    """Params function: the job's identity and cell options (`refine.commands.cells`), shell-quoted."""

    def args(wildcards):
        def fill(pattern):
            return str(pattern).format(**dict(wildcards.items()))

        rows = [
            (fill(t), fill(n), fill(d) if d else None, fill(o)) for t, n, d, o in cells
        ]
        argv = ["--experiment", config["experiment"], "--arch", wildcards.arch]
        argv += ["--model-name", fill(model), "--task", *(t for t, _, _, _ in rows)]
        argv += ["--length", *(n for _, n, _, _ in rows)]
        argv += ["--length-label", *(length_label(n) for _, n, _, _ in rows)]
        if any(d for _, _, d, _ in rows):
            argv += ["--data", *(d for _, _, d, _ in rows)]
        return shlex.join(argv + ["--out", *(o for _, _, _, o in rows)])

    return args
