# Data: tokenizer (tiny default) and corpus, NIAH / QA / LongBench evaluation files per architecture.


rule corpus:
    input:
        tokenizer=tokenizer_dir(ARCHS[0]),
    output:
        train=f"{R}/corpus/train.parquet",
        val=f"{R}/corpus/val.parquet",
    log:
        f"{R}/logs/corpus.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=corpus_cfg(),
    shell:
        "refine data corpus --cfg {params.cfg:q} --tokenizer {input.tokenizer:q} --out {output.train:q} --val-out {output.val:q} > {log:q} 2>&1"


rule pretrain_corpus:
    """A tiny base model's documents, each within one pretraining row."""
    input:
        tokenizer=f"{R}/tokenizer",
    output:
        f"{R}/corpus/pretrain_{{arch}}.parquet",
    log:
        f"{R}/logs/pretrain_corpus/{{arch}}.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=lambda w: pretrain_corpus_cfg(w.arch),
    shell:
        "refine data corpus --cfg {params.cfg:q} --tokenizer {input.tokenizer:q} --out {output:q} > {log:q} 2>&1"


use rule pretrain_corpus as pretrain_long_corpus with:
    output:
        f"{R}/corpus/pretrain_long_{{arch}}.parquet",
    log:
        f"{R}/logs/pretrain_long_corpus/{{arch}}.log",
    params:
        cfg=lambda w: pretrain_corpus_cfg(w.arch, long=True),


rule tokenizer_corpus:
    """Synthetic documents sized in words (no tokenizer exists yet): the tiny BPE's training text."""
    output:
        f"{R}/corpus/tokenizer.parquet",
    log:
        f"{R}/logs/tokenizer_corpus.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=cfg_json("corpus", omit=("length",)),
    shell:
        "refine data corpus --cfg {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        f"{R}/corpus/tokenizer.parquet",
    output:
        directory(f"{R}/tokenizer"),
    log:
        f"{R}/logs/tokenizer.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=cfg_json("tokenizer"),
    shell:
        "refine data tokenizer --cfg {params.cfg:q} --corpus {input:q} --out {output:q} > {log:q} 2>&1"


rule niah_data:
    input:
        lambda w: tokenizer_dir(w.arch),
    output:
        expand(
            f"{R}/data/{{{{arch}}}}/niah/{{task}}_{{length}}.jsonl",
            task=NIAH_TASKS,
            length=LENGTHS,
        ),
    log:
        f"{R}/logs/niah_data/{{arch}}.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=cfg_json("niah", lengths=LENGTHS),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine data niah --cfg {params.cfg:q} --tokenizer {input:q} --out {params.out:q} > {log:q} 2>&1"


rule qa_data:
    input:
        lambda w: tokenizer_dir(w.arch),
    output:
        expand(
            f"{R}/data/{{{{arch}}}}/qa/{{task}}_{{length}}_{{split}}.parquet",
            task=QA_TASKS,
            length=LENGTHS,
            split=["train", "test"],
        ),
    log:
        f"{R}/logs/qa_data/{{arch}}.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=lambda w: cfg_json("qa", lengths=LENGTHS, model=FLA_NAMES[w.arch]),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine data qa --cfg {params.cfg:q} --tokenizer {input:q} --out {params.out:q} > {log:q} 2>&1"


LONGBENCH_ARCHIVE = f"{R}/data/longbench_hub/data.zip"


rule longbench_download:
    output:
        LONGBENCH_ARCHIVE,
    log:
        f"{R}/logs/longbench_download.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=cfg_json("longbench"),
    shell:
        "refine data longbench-download --cfg {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule longbench_data:
    input:
        hub=(
            [LONGBENCH_ARCHIVE, tokenizer_dir(ARCHS[0])]
            if LONGBENCH_SOURCE == "hub"
            else []
        ),
    output:
        expand(f"{R}/data/longbench/{{task}}.parquet", task=LONGBENCH_TASKS),
    log:
        f"{R}/logs/longbench_data.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("data"),
        cfg=cfg_json("longbench", source=LONGBENCH_SOURCE),
        hub=lambda w, input: (
            shlex.join(["--archive", input.hub[0], "--tokenizer", input.hub[1]])
            if input.hub
            else ""
        ),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine data longbench --cfg {params.cfg:q} {params.hub} --out {params.out:q} > {log:q} 2>&1"


onstart:
    # A run that needs the hub archive checks that it can be had before any job starts (no dry-run).
    needed = [job.rule.name for job in workflow.dag.needrun_jobs()]
    if "longbench_download" in needed:
        import subprocess

        check = ["refine", "data", "longbench-download", "--check"]
        check += ["--cfg", cfg_json("longbench"), "--out", LONGBENCH_ARCHIVE]
        if subprocess.run(check).returncode:
            raise WorkflowError("LongBench data unavailable; see the message above")
