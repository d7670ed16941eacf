# Mid-training (SFT vs REFINE and its ablations) and nested post-training per QA task x length.


rule train_mid:
    input:
        base=f"{R}/models/{{arch}}/base",
        train=f"{R}/corpus/train.parquet",
        val=f"{R}/corpus/val.parquet",
    output:
        model=directory(f"{R}/models/{{arch}}/mid-{{method}}-s{{seed}}"),
        metrics=f"{R}/train/{{arch}}/mid-{{method}}-s{{seed}}/metrics.jsonl",
    log:
        f"{R}/logs/train_mid/{{arch}}/mid-{{method}}-s{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train_mid/{{arch}}/mid-{{method}}-s{{seed}}.tsv"
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        cfg=cfg_json("mid"),
        launcher=launcher,
        state=f"{R}/state/{{arch}}/mid-{{method}}-s{{seed}}",
    shell:
        "{params.launcher} train --stage mid --method {wildcards.method} --seed {wildcards.seed} --cfg '{params.cfg}' --base {input.base} --data {input.train} --val-data {input.val} --out {output.model} --metrics {output.metrics} --state {params.state} > {log} 2>&1"


rule train_post:
    input:
        base=f"{R}/models/{{arch}}/mid-refine-s{{seed}}",
        train=f"{R}/data/{{arch}}/qa/{{task}}_{{length}}_train.parquet",
    output:
        model=directory(
            f"{R}/models/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}"
        ),
        metrics=f"{R}/train/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}/metrics.jsonl",
    log:
        f"{R}/logs/train_post/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train_post/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}.tsv"
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        cfg=cfg_json("post"),
        launcher=launcher,
        state=f"{R}/state/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}",
    shell:
        "{params.launcher} train --stage post --method {wildcards.method} --seed {wildcards.seed} --length {wildcards.length} --cfg '{params.cfg}' --base {input.base} --data {input.train} --out {output.model} --metrics {output.metrics} --state {params.state} > {log} 2>&1"
