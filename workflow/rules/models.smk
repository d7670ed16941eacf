# Base checkpoints: tiny models pretrained here (offline default) or the paper's checkpoints from the hub.

if config["base"]["source"] == "pretrain":

    rule base_model:
        input:
            tokenizer=f"{R}/tokenizer",
            corpus=f"{R}/corpus/pretrain_{{arch}}.parquet",
        output:
            model=directory(model_dir("{arch}", X.BASE)),
            metrics=X.metrics_path(R, "{arch}", X.BASE),
        log:
            f"{R}/logs/base_model/{{arch}}.log",
        benchmark:
            f"{R}/benchmarks/base_model/{{arch}}.tsv"
        conda:
            "../envs/refine.yaml"
        threads: config["threads"]
        resources:
            gpu=0,
        params:
            code=V.command_hash("train"),
            cfg=lambda w: cfg_json(
                "pretrain", model=config["base"]["tiny"].get(w.arch, {})
            ),
            launcher=launcher,
            name=X.BASE,
            state=X.state_dir(R, "{arch}", X.BASE),
        shell:
            "{params.launcher} train --stage pretrain --arch {wildcards.arch} --model-name {params.name} --cfg {params.cfg:q} --tokenizer {input.tokenizer:q} --data {input.corpus:q} --out {output.model:q} --metrics {output.metrics:q} --state {params.state:q} > {log:q} 2>&1"

else:

    rule base_model:
        output:
            directory(model_dir("{arch}", X.BASE)),
        log:
            f"{R}/logs/base_model/{{arch}}.log",
        conda:
            "../envs/refine.yaml"
        params:
            code=V.command_hash("data"),
            repo=lambda w: config["base"]["hub"][w.arch],
            revision=lambda w: config["base"]["revision"][w.arch],
        shell:
            "refine data checkpoint --repo {params.repo:q} --revision {params.revision:q} --out {output:q} > {log:q} 2>&1"


rule models:
    input:
        all_models(),
