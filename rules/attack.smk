rule attack:
    input:
        upstream=WF.batch_inputs("attack"),
    output:
        manifest=str(LAYOUT.manifest("attack", "{batch}")),
    log:
        str(LAYOUT.batch_log("attack", "{batch}")),
    params:
        plan=WF.batch_plan("attack"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=WF.gpu("attack"),
    shell:
        WF.stage_command()
