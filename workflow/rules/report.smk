# Tables, figures, claim checks and the HTML report: pure functions of evals/ and train/ (seconds to rerun).


localrules:
    tables,
    figures,
    claims,
    report,
    ablation_report,
    ablations,


TABLES = ["table3", "table4", "table5", "table6", "table7", "tableE1", "tableE2", "fig5"]
FIGURES = ["fig4_val_ntp_acc", "figE1_val_loss", "figE3_reward", "fig5_k_c", "summary_refine_minus_sft"]
REPORT_ARGS = (
    f"--records {R}/evals --metrics {R}/train --ablation-family {config['ablations']['family']}"
)
PAPER_FLAG = "--paper-config" if config["base"]["source"] == "hub" else ""


def metrics_files(methods=("sft", "refine")):
    return [f"{R}/train/{a}/mid-{m}-s{s}/metrics.jsonl" for a in ARCHS for m in methods for s in MID_SEEDS]


rule tables:
    input:
        all_records(),
    output:
        [
            report(f"{R}/tables/{name}.csv", caption="../report/tables.rst", category="Tables")
            for name in TABLES
        ],
    log:
        f"{R}/logs/tables.log",
    conda:
        "../envs/refine.yaml"
    shell:
        "refine report tables {REPORT_ARGS} {PAPER_FLAG} --out {R}/tables > {log} 2>&1"


rule figures:
    input:
        all_records(),
        metrics_files(),
    output:
        [
            report(f"{R}/figures/{name}.png", caption="../report/figures.rst", category="Figures")
            for name in FIGURES
        ],
    log:
        f"{R}/logs/figures.log",
    conda:
        "../envs/refine.yaml"
    shell:
        "refine report figures {REPORT_ARGS} --out {R}/figures > {log} 2>&1"


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
    shell:
        "refine report claims {REPORT_ARGS} --out {R} > {log} 2>&1"


rule report:
    input:
        all_records(),
        metrics_files(),
    output:
        f"{R}/report/report.html",
    log:
        f"{R}/logs/report.log",
    conda:
        "../envs/refine.yaml"
    shell:
        "refine report build {REPORT_ARGS} {PAPER_FLAG} --out {R}/report > {log} 2>&1"


rule ablation_report:
    input:
        all_records(),
        ablation_records(),
        metrics_files(["refine"] + config["ablations"]["mid_methods"]),
    output:
        f"{R}/ablations/report.html",
        f"{R}/ablations/tables/table6.csv",
    log:
        f"{R}/logs/ablation_report.log",
    conda:
        "../envs/refine.yaml"
    shell:
        "refine report build {REPORT_ARGS} {PAPER_FLAG} --out {R}/ablations > {log} 2>&1"


rule ablations:
    input:
        rules.ablation_report.output,
