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
        f"{WF.python} -m pl_dsl.jobs --results {LAYOUT.root} --log {{log}} plot "
        "--spec {params.spec:q} --experiment {wildcards.experiment} "
        "--table {input.table} --png {output.png} --svg {output.svg}"
