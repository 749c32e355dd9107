"""The stages of the pipeline, each one module (computation plus declaration), registered here
and only here, one line each, in dependency order. Torch-free at import: the planner reads the
declarations."""

from pl_dsl.engine.registry import Registry
from pl_dsl.stages import attack, decision_map, evaluate, robustness, theory, train_f, train_g

REGISTRY = Registry([
    train_f.STAGE,
    attack.STAGE,
    train_g.STAGE,
    evaluate.STAGE,
    theory.STAGE,
    decision_map.STAGE,
    robustness.STAGE,
])
