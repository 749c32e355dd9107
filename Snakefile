# pl-dsl: the registered stages (train f -> attack -> train g -> evaluate, theory, decision map)
# -> results table -> plots, for every experiment in experiments/ (or those chosen with
# --config experiments=name1,name2).
from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"
include: "rules/stages.smk"
include: "rules/report.smk"


# `snakemake --report`: opens with the claims of each experiment (written while reporting).
report: BRIDGE.report_description(workflow.basedir)


rule all:
    input:
        BRIDGE.targets(),
    default_target: True
