# The outputs of an experiment: its results table (and per-run folders) and its plots.
rule collect_results:
    input:
        finished=BRIDGE.collect_inputs,
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
        plan=BRIDGE.table_plan,
        repair=BRIDGE.collect_repair,
        description=BRIDGE.description,
    threads: 1
    shell:
        BRIDGE.job_command("collect") + " --plan {params.plan} --table {output.table} --runs {output.runs}"


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
        input=BRIDGE.report_input("plot"),
    threads: 1
    shell:
        BRIDGE.report_command("plot", ("png", "svg"))


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
        input=BRIDGE.report_input("figure"),
        caption=BRIDGE.report_caption("figure"),
    threads: 1
    shell:
        BRIDGE.report_command("figure", ("png", "svg"))


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
        input=BRIDGE.report_input("claims"),
        description=BRIDGE.report_caption("claims"),
    threads: 1
    shell:
        BRIDGE.report_command("claims", ("claims",))
