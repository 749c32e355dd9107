# The outputs of an experiment: its results table (and per-run folders) and its plots.
rule collect_results:
    input:
        finished=WF.collect_inputs,
    output:
        table=str(LAYOUT.table("{experiment}")),
        runs=directory(str(LAYOUT.runs_dir("{experiment}"))),
    log:
        str(LAYOUT.experiment_log("{experiment}", "collect_results")),
    params:
        plan=WF.table_plan,
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
