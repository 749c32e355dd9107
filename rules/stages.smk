# One rule per registered stage (pl_dsl/stages/), named after it: each job computes one batch
# of the stage's units. Everything stage-specific comes from the stage's declaration.
for stage in WF.stages:

    rule:
        name:
            stage.name
        input:
            needs=WF.batch_inputs(stage.name),
        output:
            manifest=str(LAYOUT.manifest(stage.name, "{batch}")),
        log:
            str(LAYOUT.batch_log(stage.name, "{batch}")),
        params:
            plan=WF.batch_plan(stage.name),
        threads: 1
        resources:
            mem_mb=WF.resource(stage.name, "mem_mb"),
            runtime=WF.resource(stage.name, "runtime"),
            gpu=WF.gpu(stage.name),
        shell:
            WF.stage_command()
