rule train_g:
    input:
        upstream=WF.batch_inputs("train_g"),
    output:
        manifest=str(LAYOUT.manifest("train_g", "{batch}")),
    log:
        str(LAYOUT.batch_log("train_g", "{batch}")),
    params:
        plan=WF.batch_plan("train_g"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=WF.gpu("train_g"),
    shell:
        WF.stage_command()
