# The outputs of an experiment: its results table (and per-run folders) and its plots.
rule collect_results:
    input:
        finished=WF.collect_inputs,
    output:
        table=report(
            str(LAYOUT.table("{experiment}")),
            caption="../report/table.rst",
            category="{experiment}",
        ),
        runs=report(
            directory(str(LAYOUT.runs_dir("{experiment}"))),
            patterns=["{run}/decision_map.png"],
            caption="../report/map.rst",
            category="{experiment}",
        ),
    log:
        str(LAYOUT.experiment_log("{experiment}", "collect_results")),
    params:
        plan=WF.table_plan,
        repair=WF.collect_repair,
        description=WF.description,
    threads: 1
    shell:
        WF.job_command("collect") + " --plan {params.plan} --table {output.table} --runs {output.runs}"


rule plot:
    input:
        table=str(LAYOUT.table("{experiment}")),
    output:
        png=report(
            str(LAYOUT.plot("{experiment}", "{plot}", "png")),
            caption="../report/plot.rst",
            category="{experiment}",
        ),
        svg=str(LAYOUT.plot("{experiment}", "{plot}", "svg")),
    log:
        str(LAYOUT.experiment_log("{experiment}", "plot_{plot}")),
    params:
        spec=WF.plot_spec,
    threads: 1
    shell:
        WF.job_command("plot") + " --spec {params.spec:q} --experiment {wildcards.experiment}"
        " --table {input.table} --png {output.png} --svg {output.svg}"


rule draw_figure:
    input:
        table=str(LAYOUT.table("{experiment}")),
        runs=str(LAYOUT.runs_dir("{experiment}")),
    output:
        png=report(
            str(LAYOUT.figure("{experiment}", "{figure}", "png")),
            caption="../report/figure.rst",
            category="{experiment}",
        ),
        svg=str(LAYOUT.figure("{experiment}", "{figure}", "svg")),
    log:
        str(LAYOUT.experiment_log("{experiment}", "figure_{figure}")),
    params:
        spec=WF.figure_spec,
        caption=WF.figure_caption,
    threads: 1
    shell:
        WF.job_command("figure") + " --spec {params.spec:q} --experiment {wildcards.experiment}"
        " --table {input.table} --png {output.png} --svg {output.svg}"


rule check_claims:
    input:
        table=str(LAYOUT.table("{experiment}")),
    output:
        claims=report(
            str(LAYOUT.claims("{experiment}")),
            caption="../report/claims.rst",
            category="{experiment}",
        ),
    log:
        str(LAYOUT.experiment_log("{experiment}", "check_claims")),
    params:
        spec=WF.claims_spec,
        description=WF.description,
    threads: 1
    shell:
        WF.job_command("claims") + " --spec {params.spec:q} --table {input.table} --out {output.claims}"
