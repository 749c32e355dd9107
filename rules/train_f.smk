rule train_f:
    input:
        upstream=WF.batch_inputs("train_f"),
    output:
        manifest=str(LAYOUT.manifest("train_f", "{batch}")),
    log:
        str(LAYOUT.batch_log("train_f", "{batch}")),
    params:
        plan=WF.batch_plan("train_f"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=WF.gpu("train_f"),
    shell:
        WF.stage_command()
