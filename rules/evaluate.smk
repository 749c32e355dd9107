rule evaluate:
    input:
        upstream=WF.batch_inputs("evaluate"),
    output:
        manifest=str(LAYOUT.manifest("evaluate", "{batch}")),
    log:
        str(LAYOUT.batch_log("evaluate", "{batch}")),
    params:
        plan=WF.batch_plan("evaluate"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=WF.gpu("evaluate"),
    shell:
        WF.stage_command()


rule collect_results:
    input:
        unpack(WF.collect_inputs),
    output:
        table=str(LAYOUT.table("{experiment}")),
        runs=directory(str(LAYOUT.runs_dir("{experiment}"))),
    log:
        str(LAYOUT.experiment_log("{experiment}", "collect_results")),
    threads: 1
    shell:
        f"{WF.python} -m pl_dsl.jobs --results {LAYOUT.root} --log {{log}} collect "
        "--plan {input.plan} --table {output.table} --runs {output.runs}"
