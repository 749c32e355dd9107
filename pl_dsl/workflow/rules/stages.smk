# One rule per registered stage (pl_dsl/stages/), named after it: each job computes one batch
# of the stage's units; and the rule `fused`, whose jobs compute whole small components (f and
# everything computed from it) in one process. Everything else comes from the plan.
for rule_name in BRIDGE.rules:

    rule:
        name:
            rule_name
        input:
            needs=BRIDGE.batch_inputs(rule_name),
        output:
            manifest=str(LAYOUT.manifest(rule_name, "{batch}")),
        log:
            str(LAYOUT.batch_log(rule_name, "{batch}")),
        params:
            plan=BRIDGE.batch_plan(rule_name),
        threads: BRIDGE.threads(rule_name)
        resources:
            mem_mb=BRIDGE.resource(rule_name, "mem_mb"),
            runtime=BRIDGE.resource(rule_name, "runtime"),
            gpu=BRIDGE.gpu(rule_name),
        shell:
            BRIDGE.stage_command()
