# Base checkpoints: tiny models pretrained here (offline default) or the paper's checkpoints from the hub.

if config["base"]["source"] == "pretrain":

    rule base_model:
        """Pretraining from scratch: the base model, or its short phase (`{phase}` base_short) when its arch has
        a long one (pretrain_long.archs, rule base_model_long)."""
        input:
            tokenizer=f"{R}/tokenizer",
            corpus=f"{R}/corpus/pretrain_{{arch}}.parquet",
        output:
            model=directory(model_dir("{arch}", "{phase}")),
            metrics=X.metrics_path(R, "{arch}", "{phase}"),
        log:
            f"{R}/logs/base_model/{{arch}}_{{phase}}.log",
        benchmark:
            f"{R}/benchmarks/base_model/{{arch}}_{{phase}}.tsv"
        wildcard_constraints:
            phase=f"{X.BASE}|{X.BASE_SHORT}",
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
            state=X.state_dir(R, "{arch}", "{phase}"),
            base="",  # from scratch (base_model_long: the checkpoint it continues)
        shell:
            "{params.launcher} train --stage pretrain --arch {wildcards.arch} --model-name {params.name}{params.base} --cfg {params.cfg:q} --tokenizer {input.tokenizer:q} --data {input.corpus:q} --out {output.model:q} --metrics {output.metrics:q} --state {params.state:q} > {log:q} 2>&1"

    if LONG_ARCHS:

        ruleorder: base_model_long > base_model

        # The long phase of a length curriculum: the short phase's model continues on documents at the evaluation
        # length (pretrain_long); base_model's command with another corpus, config and starting checkpoint.
        use rule base_model as base_model_long with:
            input:
                tokenizer=f"{R}/tokenizer",
                corpus=f"{R}/corpus/pretrain_long_{{arch}}.parquet",
                base=model_dir("{arch}", X.BASE_SHORT),
            output:
                model=directory(model_dir("{arch}", X.BASE)),
                metrics=X.metrics_path(R, "{arch}", X.BASE),
            log:
                f"{R}/logs/base_model_long/{{arch}}.log",
            benchmark:
                f"{R}/benchmarks/base_model_long/{{arch}}.tsv"
            wildcard_constraints:
                arch="|".join(LONG_ARCHS),
            params:
                cfg=cfg_json("pretrain_long", omit=("archs", "corpus")),
                state=X.state_dir(R, "{arch}", X.BASE),
                base=lambda w, input: f" --base {shlex.quote(input.base)}",

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
