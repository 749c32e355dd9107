rule theory:
    input:
        upstream=WF.batch_inputs("theory"),
    output:
        manifest=str(LAYOUT.manifest("theory", "{batch}")),
    log:
        str(LAYOUT.batch_log("theory", "{batch}")),
    params:
        plan=WF.batch_plan("theory"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=WF.gpu("theory"),
    shell:
        WF.stage_command()


rule decision_map:
    input:
        upstream=WF.batch_inputs("decision_map"),
    output:
        manifest=str(LAYOUT.manifest("decision_map", "{batch}")),
    log:
        str(LAYOUT.batch_log("decision_map", "{batch}")),
    params:
        plan=WF.batch_plan("decision_map"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=WF.gpu("decision_map"),
    shell:
        WF.stage_command()
