# Evaluations: one record per (arch, model, family, task, length, ttt). A job evaluates one model on all of
# its cells (the model loads once); test-time training adapts a fresh copy of the model per evaluation file.

EVAL = f"{R}/evals/{{arch}}/{{model}}"
MIDS = r"base|mid-[a-z0-9_]+-s\d+"


rule eval_niah:
    input:
        model=model_dir("{arch}", "{model}"),
        data=lambda w: (
            []
            if config["niah_eval"]["builtin"]
            else eval_paths(
                f"{R}/data/{w.arch}/niah/{{task}}_{{length}}.jsonl", NIAH_TASKS
            )
        ),
    output:
        eval_paths(f"{EVAL}/niah/{{task}}_{{length}}_ttt-none.json", NIAH_TASKS),
    log:
        f"{R}/logs/eval_niah/{{arch}}/{{model}}.log",
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("niah_eval"),
        cells=cells(NIAH_TASKS),
        data=lambda w, input: f"--data {input.data}" if input.data else "",
    shell:
        "REFINE_THREADS={threads} refine evaluate niah --experiment {params.experiment} --arch {wildcards.arch} --model-name {wildcards.model} --model {input.model} --cfg '{params.cfg}' --task {params.cells[task]} --length {params.cells[length]} --length-label {params.cells[label]} {params.data} --out {output} > {log} 2>&1"


rule eval_qa:
    input:
        model=model_dir("{arch}", "{model}"),
        data=eval_paths(
            f"{R}/data/{{arch}}/qa/{{task}}_{{length}}_test.parquet", QA_TASKS
        ),
    output:
        eval_paths(f"{EVAL}/qa/{{task}}_{{length}}_ttt-none.json", QA_TASKS),
    log:
        f"{R}/logs/eval_qa/{{arch}}/{{model}}.log",
    wildcard_constraints:
        model=MIDS,
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("evaluation"),
        cells=cells(QA_TASKS),
    shell:
        "REFINE_THREADS={threads} refine evaluate qa --experiment {params.experiment} --arch {wildcards.arch} --model-name {wildcards.model} --model {input.model} --cfg '{params.cfg}' --task {params.cells[task]} --length {params.cells[length]} --length-label {params.cells[label]} --data {input.data} --out {output} > {log} 2>&1"


rule eval_qa_post:
    input:
        model=model_dir("{arch}", "post-{task}-{length}-{method}-s{seed}"),
        data=f"{R}/data/{{arch}}/qa/{{task}}_{{length}}_test.parquet",
    output:
        f"{R}/evals/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}/qa/{{task}}_{{length}}_ttt-none.json",
    log:
        f"{R}/logs/eval_qa/{{arch}}/post-{{task}}-{{length}}-{{method}}-s{{seed}}.log",
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("evaluation"),
        label=lambda w: length_label(w.length),
    shell:
        "REFINE_THREADS={threads} refine evaluate qa --experiment {params.experiment} --arch {wildcards.arch} --model-name post-{wildcards.task}-{wildcards.length}-{wildcards.method}-s{wildcards.seed} --model {input.model} --cfg '{params.cfg}' --task {wildcards.task} --length {wildcards.length} --length-label {params.label} --data {input.data} --out {output} > {log} 2>&1"


rule ttt_qa:
    input:
        model=model_dir("{arch}", "post-{task}-{length}-nested_refine-s{seed}"),
        data=f"{R}/data/{{arch}}/qa/{{task}}_{{length}}_test.parquet",
    output:
        f"{R}/evals/{{arch}}/post-{{task}}-{{length}}-nested_refine-s{{seed}}/qa/{{task}}_{{length}}_ttt-{{ttt}}.json",
    log:
        f"{R}/logs/ttt_qa/{{arch}}/post-{{task}}-{{length}}-nested_refine-s{{seed}}_{{ttt}}.log",
    benchmark:
        f"{R}/benchmarks/ttt_qa/{{arch}}/post-{{task}}-{{length}}-nested_refine-s{{seed}}_{{ttt}}.tsv"
    wildcard_constraints:
        ttt="sft|refine|refine_cosine",
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("ttt", generation=config["evaluation"]),
        label=lambda w: length_label(w.length),
        launcher=launcher,
    shell:
        "{params.launcher} train --stage ttt --method {wildcards.ttt} --family qa --cfg '{params.cfg}' --base {input.model} --experiment {params.experiment} --arch {wildcards.arch} --model-name post-{wildcards.task}-{wildcards.length}-nested_refine-s{wildcards.seed} --task {wildcards.task} --length {wildcards.length} --length-label {params.label} --data {input.data} --out {output} > {log} 2>&1"


rule eval_longbench:
    input:
        model=model_dir("{arch}", "{model}"),
        data=expand(f"{R}/data/longbench/{{task}}.parquet", task=LONGBENCH_TASKS),
    output:
        eval_paths(
            f"{EVAL}/longbench/{{task}}_{{length}}_ttt-none.json",
            LONGBENCH_TASKS,
            [LENGTHS[-1]],
        ),
    log:
        f"{R}/logs/eval_longbench/{{arch}}/{{model}}.log",
    wildcard_constraints:
        model=MIDS,
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("evaluation"),
        cells=cells(LONGBENCH_TASKS, [LENGTHS[-1]]),
    shell:
        "REFINE_THREADS={threads} refine evaluate longbench --experiment {params.experiment} --arch {wildcards.arch} --model-name {wildcards.model} --model {input.model} --cfg '{params.cfg}' --task {params.cells[task]} --length {params.cells[length]} --length-label {params.cells[label]} --data {input.data} --out {output} > {log} 2>&1"


rule ttt_longbench:
    input:
        model=model_dir("{arch}", "{model}"),
        data=expand(f"{R}/data/longbench/{{task}}.parquet", task=LONGBENCH_TASKS),
    output:
        eval_paths(
            f"{EVAL}/longbench/{{task}}_{{length}}_ttt-{{ttt}}.json",
            LONGBENCH_TASKS,
            [LENGTHS[-1]],
        ),
    log:
        f"{R}/logs/ttt_longbench/{{arch}}/{{model}}_{{ttt}}.log",
    benchmark:
        f"{R}/benchmarks/ttt_longbench/{{arch}}/{{model}}_{{ttt}}.tsv"
    wildcard_constraints:
        model=r"mid-[a-z0-9_]+-s\d+",
        ttt="sft|refine|refine_cosine",
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        experiment=config["experiment"],
        cfg=cfg_json("ttt", generation=config["evaluation"]),
        cells=cells(LONGBENCH_TASKS, [LENGTHS[-1]]),
        launcher=launcher,
    shell:
        "{params.launcher} train --stage ttt --method {wildcards.ttt} --family longbench --cfg '{params.cfg}' --base {input.model} --experiment {params.experiment} --arch {wildcards.arch} --model-name {wildcards.model} --task {params.cells[task]} --length {params.cells[length]} --length-label {params.cells[label]} --data {input.data} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        all_records(),
