rule train_f:
    input:
        unpack(WF.batch_inputs("train_f")),
    output:
        manifest=str(LAYOUT.manifest("train_f", "{batch}")),
    log:
        str(LAYOUT.batch_log("train_f", "{batch}")),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=WF.gpu("train_f"),
    shell:
        WF.stage_command()
