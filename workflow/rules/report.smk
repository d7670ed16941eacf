# Tables, figures, claim checks and the HTML report: pure functions of evals/ and train/ (seconds to rerun).


localrules:
    tables,
    figures,
    claims,
    report,
    report_screenshot,
    ablation_report,
    ablations,


TABLES = [
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "tableE1",
    "tableE2",
    "fig5",
]
FIGURES = [
    "fig4_val_ntp_acc",
    "figE1_val_loss",
    "figE3_reward",
    "fig5_k_c",
    "summary_refine_minus_sft",
]
REPORT_ARGS = shlex.join(
    ["--records", f"{R}/evals", "--metrics", f"{R}/train"]
    + ["--ablation-family", config["ablations"]["family"], "--niah-tasks", *NIAH_TASKS]
    + ["--ablation-seeds", *map(str, ABLATION_SEEDS)]
    + ([] if longbench_available() else ["--not-configured", "longbench"])
    + [
        arg
        for family in config["report"]["pipeline_only"]
        for arg in ("--pipeline-only", family)
    ]
)
PAPER_FLAG = (
    "--paper-config" if config["base"]["source"] == "hub" else ""
)  # deltas vs the paper


rule tables:
    input:
        all_records(),
    output:
        [
            report(
                f"{R}/tables/{name}.csv",
                caption="../report/tables.rst",
                category="Tables",
            )
            for name in TABLES
        ],
    log:
        f"{R}/logs/tables.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("report"),
        args=f"{REPORT_ARGS} {PAPER_FLAG}",
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine report tables {params.args} --out {params.out:q} > {log:q} 2>&1"


rule figures:
    input:
        all_records(),
        metrics_files(),
    output:
        [
            report(
                f"{R}/figures/{name}.png",
                caption="../report/figures.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
    log:
        f"{R}/logs/figures.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("report"),
        args=REPORT_ARGS,
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine report figures {params.args} --out {params.out:q} > {log:q} 2>&1"


rule claims:
    input:
        all_records(),
        metrics_files(),
    output:
        report(f"{R}/claims.csv", caption="../report/claims.rst", category="Claims"),
        f"{R}/claims.md",
    log:
        f"{R}/logs/claims.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("report"),
        args=REPORT_ARGS,
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine report claims {params.args} --out {params.out:q} > {log:q} 2>&1"


rule report:
    input:
        records=all_records(),
        metrics=metrics_files(),
        tables=rules.tables.output,
        figures=rules.figures.output,
        claims=rules.claims.output[0],
    output:
        f"{R}/report/report.html",
    log:
        f"{R}/logs/report.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("report"),
        args=f"{REPORT_ARGS} {PAPER_FLAG}",
        cfg=json.dumps(config, sort_keys=True),  # the summary's config, hash and data sources
        figures=lambda w, input: os.path.dirname(input.figures[0]),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine report build {params.args} --config-json {params.cfg:q} --figures {params.figures:q} --claims {input.claims:q} --out {params.out:q} > {log:q} 2>&1"


rule report_screenshot:  # not in `all`: needs chromium + chromedriver (README "What you get")
    input:
        f"{R}/report/report.html",
    output:
        f"{R}/report/report.png",
    log:
        f"{R}/logs/report_screenshot.log",
    conda:
        "../envs/refine.yaml"
    shell:
        "refine report screenshot {input:q} --out {output:q} > {log} 2>&1"


rule ablation_report:
    input:
        all_records(),
        ablation_records(),
        metrics_files(mid_models(["refine"]) + ablation_models()),
    output:
        f"{R}/ablations/report.html",
        f"{R}/ablations/tables/table6.csv",
    log:
        f"{R}/logs/ablation_report.log",
    conda:
        "../envs/refine.yaml"
    params:
        code=V.command_hash("report"),
        args=f"{REPORT_ARGS} {PAPER_FLAG}",
        cfg=json.dumps(config, sort_keys=True),  # the summary's config, hash and data sources
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "refine report build {params.args} --config-json {params.cfg:q} --out {params.out:q} > {log:q} 2>&1"


rule ablations:
    input:
        rules.ablation_report.output,
