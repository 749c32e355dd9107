# pl-dsl: train f -> attack -> train g -> evaluate (-> theory, decision map) -> plot, for every experiment in
# experiments/ (or those chosen with --config experiments=name1,name2).
from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"
include: "rules/train_f.smk"
include: "rules/attack.smk"
include: "rules/train_g.smk"
include: "rules/evaluate.smk"
include: "rules/theory.smk"
include: "rules/plot.smk"


rule all:
    input:
        WF.targets(),
    default_target: True
