# Base checkpoints: tiny models pretrained here (offline default) or the paper's checkpoints from the hub.

if config["base"]["source"] == "pretrain":

    rule base_model:
        input:
            tokenizer=f"{R}/tokenizer",
            corpus=f"{R}/corpus/train.parquet",
        output:
            model=directory(f"{R}/models/{{arch}}/base"),
            metrics=f"{R}/train/{{arch}}/base/metrics.jsonl",
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
            cfg=lambda w: cfg_json(
                "pretrain", model=config["base"]["tiny"].get(w.arch, {})
            ),
            launcher=launcher,
            state=f"{R}/state/{{arch}}/base",
        shell:
            "{params.launcher} train --stage pretrain --arch {wildcards.arch} --cfg '{params.cfg}' --tokenizer {input.tokenizer} --data {input.corpus} --out {output.model} --metrics {output.metrics} --state {params.state} > {log} 2>&1"

else:

    rule base_model:
        output:
            directory(f"{R}/models/{{arch}}/base"),
        log:
            f"{R}/logs/base_model/{{arch}}.log",
        conda:
            "../envs/refine.yaml"
        params:
            repo=lambda w: config["base"]["hub"][w.arch],
        shell:
            "refine data checkpoint --repo {params.repo} --out {output} > {log} 2>&1"


rule models:
    input:
        all_models(),
