# Evaluations: one record per (arch, model, family, task, length, ttt). A job evaluates one model on all of
# its cells (the model loads once); test-time training adapts a fresh copy of the model per evaluation file.
# Every rule here is eval_niah or ttt_longbench with other cells (`use rule`); cells: common.smk.

NIAH_CELLS = eval_cells("niah", NIAH_TASKS, LENGTHS)
QA_CELLS = eval_cells("qa", QA_TASKS, LENGTHS)
LONGBENCH_CELLS = eval_cells("longbench", LONGBENCH_TASKS, [LENGTHS[-1]])
POST = X.post_name("{task}", "{length}", "{method}", "{seed}")
POST_CELLS = eval_cells("qa", ["{task}"], ["{length}"], model=POST)
NESTED = X.post_name("{task}", "{length}", "nested_refine", "{seed}")
NESTED_TTT_CELLS = eval_cells("qa", ["{task}"], ["{length}"], model=NESTED, ttt="{ttt}")
LONGBENCH_TTT_CELLS = eval_cells(
    "longbench", LONGBENCH_TASKS, [LENGTHS[-1]], ttt="{ttt}"
)
BASE_OR_MID = X.name_pattern("base", "mid")


rule eval_niah:
    input:
        model=model_dir("{arch}", "{model}"),
        data=cell_inputs(NIAH_CELLS),
    output:
        cell_outputs(NIAH_CELLS),
    log:
        f"{R}/logs/eval_niah/{{arch}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/eval_niah/{{arch}}/{{model}}.tsv"
    wildcard_constraints:
        model=BASE_OR_MID,
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        code=V.command_hash("evaluate"),
        family="niah",
        cfg=cfg_json("niah_eval"),
        cells=cell_args(NIAH_CELLS),
    shell:
        "REFINE_THREADS={threads} refine evaluate {params.family} --model {input.model:q} --cfg {params.cfg:q} {params.cells} > {log:q} 2>&1"


use rule eval_niah as eval_qa with:
    input:
        model=model_dir("{arch}", "{model}"),
        data=cell_inputs(QA_CELLS),
    output:
        cell_outputs(QA_CELLS),
    log:
        f"{R}/logs/eval_qa/{{arch}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/eval_qa/{{arch}}/{{model}}.tsv"
    params:
        family="qa",
        cfg=cfg_json("evaluation"),
        cells=cell_args(QA_CELLS),


use rule eval_niah as eval_qa_post with:
    input:
        model=model_dir("{arch}", POST),
        data=cell_inputs(POST_CELLS),
    output:
        cell_outputs(POST_CELLS),
    log:
        f"{R}/logs/eval_qa/{{arch}}/{POST}.log",
    benchmark:
        f"{R}/benchmarks/eval_qa_post/{{arch}}/{POST}.tsv"
    params:
        family="qa",
        cfg=cfg_json("evaluation"),
        cells=cell_args(POST_CELLS, model=POST),


use rule eval_niah as eval_longbench with:
    input:
        model=model_dir("{arch}", "{model}"),
        data=cell_inputs(LONGBENCH_CELLS),
    output:
        cell_outputs(LONGBENCH_CELLS),
    log:
        f"{R}/logs/eval_longbench/{{arch}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/eval_longbench/{{arch}}/{{model}}.tsv"
    params:
        family="longbench",
        cfg=cfg_json("evaluation"),
        cells=cell_args(LONGBENCH_CELLS),


rule ttt_longbench:
    input:
        model=model_dir("{arch}", "{model}"),
        data=cell_inputs(LONGBENCH_TTT_CELLS),
    output:
        cell_outputs(LONGBENCH_TTT_CELLS),
    log:
        f"{R}/logs/ttt_longbench/{{arch}}/{{model}}_{{ttt}}.log",
    benchmark:
        f"{R}/benchmarks/ttt_longbench/{{arch}}/{{model}}_{{ttt}}.tsv"
    wildcard_constraints:
        model=X.name_pattern("mid"),
        ttt=TTT_TRAINED,
    conda:
        "../envs/refine.yaml"
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        code=V.command_hash("train"),
        family="longbench",
        cfg=cfg_json("ttt", generation=config["evaluation"]),
        cells=cell_args(LONGBENCH_TTT_CELLS),
        launcher=launcher,
    shell:
        "{params.launcher} train --stage ttt --method {wildcards.ttt} --family {params.family} --cfg {params.cfg:q} --base {input.model:q} {params.cells} > {log:q} 2>&1"


use rule ttt_longbench as ttt_qa with:
    input:
        model=model_dir("{arch}", NESTED),
        data=cell_inputs(NESTED_TTT_CELLS),
    output:
        cell_outputs(NESTED_TTT_CELLS),
    log:
        f"{R}/logs/ttt_qa/{{arch}}/{NESTED}_{{ttt}}.log",
    benchmark:
        f"{R}/benchmarks/ttt_qa/{{arch}}/{NESTED}_{{ttt}}.tsv"
    params:
        family="qa",
        cfg=cfg_json("ttt", generation=config["evaluation"]),
        cells=cell_args(NESTED_TTT_CELLS, model=NESTED),
        launcher=launcher,


# Table E.1: lm-eval's short-context tasks (paper) or their local stand-ins (offline); cells {task}-{metric}.
SHORT_CELLS = eval_cells("short", config["short_eval"]["tasks"], [LENGTHS[0]])
SHORT_CFG = json.dumps(  # ShortConfig: the section without its cells
    {k: v for k, v in config["short_eval"].items() if k != "tasks"}, sort_keys=True
)

if SHORT_CELLS:

    use rule eval_niah as eval_short with:
        input:
            model=model_dir("{arch}", "{model}"),
            data=cell_inputs(SHORT_CELLS),
        output:
            cell_outputs(SHORT_CELLS),
        log:
            f"{R}/logs/eval_short/{{arch}}/{{model}}.log",
        benchmark:
            f"{R}/benchmarks/eval_short/{{arch}}/{{model}}.tsv"
        params:
            family="short",
            cfg=SHORT_CFG,
            cells=cell_args(SHORT_CELLS),


rule evaluate:
    input:
        all_records(),
