# Mid-training (SFT vs REFINE and its ablations) and nested post-training per QA task x length.

MID = X.mid_name("{method}", "{seed}")
POST_TRAINED = X.post_name("{task}", "{length}", "{method}", "{seed}")


rule train_mid:
    input:
        base=model_dir("{arch}", X.BASE),
        train=f"{R}/corpus/train.parquet",
        val=f"{R}/corpus/val.parquet",
    output:
        model=directory(model_dir("{arch}", MID)),
        metrics=X.metrics_path(R, "{arch}", MID),
    log:
        f"{R}/logs/train_mid/{{arch}}/{MID}.log",
    benchmark:
        f"{R}/benchmarks/train_mid/{{arch}}/{MID}.tsv"
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        code=V.command_hash("train"),
        cfg=cfg_json("mid"),
        launcher=launcher,
        name=MID,
        state=X.state_dir(R, "{arch}", MID),
    shell:
        "{params.launcher} train --stage mid --arch {wildcards.arch} --model-name {params.name} --cfg {params.cfg:q} --base {input.base:q} --data {input.train:q} --val-data {input.val:q} --out {output.model:q} --metrics {output.metrics:q} --state {params.state:q} > {log:q} 2>&1"


rule train_post:
    input:
        base=model_dir("{arch}", X.mid_name("refine", "{seed}")),
        train=f"{R}/data/{{arch}}/qa/{{task}}_{{length}}_train.parquet",
    output:
        model=directory(model_dir("{arch}", POST_TRAINED)),
        metrics=X.metrics_path(R, "{arch}", POST_TRAINED),
    log:
        f"{R}/logs/train_post/{{arch}}/{POST_TRAINED}.log",
    benchmark:
        f"{R}/benchmarks/train_post/{{arch}}/{POST_TRAINED}.tsv"
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        code=V.command_hash("train"),
        cfg=cfg_json("post"),
        launcher=launcher,
        name=POST_TRAINED,
        state=X.state_dir(R, "{arch}", POST_TRAINED),
    shell:
        "{params.launcher} train --stage post --arch {wildcards.arch} --model-name {params.name} --length {wildcards.length} --cfg {params.cfg:q} --base {input.base:q} --data {input.train:q} --out {output.model:q} --metrics {output.metrics:q} --state {params.state:q} > {log:q} 2>&1"
