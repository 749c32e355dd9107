rule attack:
    input:
        unpack(WF.batch_inputs("attack")),
    output:
        manifest=str(LAYOUT.manifest("attack", "{batch}")),
    log:
        str(LAYOUT.batch_log("attack", "{batch}")),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=WF.gpu("attack"),
    shell:
        WF.stage_command()
