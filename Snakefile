# REFINE reproduction: checkpoint -> mid / post / test-time training (SFT vs REFINE) -> NIAH, long-QA and
# LongBench evaluations -> the paper's tables, figures and claim checks. See README.md.
#   snakemake --cores all                                     the embedded default (config/config.yaml)
#   snakemake --cores all --configfile config/smoke.yaml      the CI-sized DAG
#   snakemake --workflow-profile workflow/profiles/slurm --configfile config/paper.yaml


include: "workflow/Snakefile"


rule all:
    default_target: True
    input:
        rules.evaluate.input,
        rules.tables.output,
        rules.figures.output,
        rules.claims.output,
        rules.report.output,
