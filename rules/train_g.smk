rule train_g:
    input:
        unpack(WF.batch_inputs("train_g")),
    output:
        manifest=str(LAYOUT.manifest("train_g", "{batch}")),
    log:
        str(LAYOUT.batch_log("train_g", "{batch}")),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=WF.gpu("train_g"),
    shell:
        WF.stage_command()
