"""What the Snakefile needs from pl-dsl: the checked experiments, their batches, and targets.

Imported at every Snakemake start, so it must stay free of torch and plotting imports.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from pl_dsl.paths import Layout
from pl_dsl.plan import DEFAULT_BATCH_SIZE, DEFAULT_MIN_BATCHES, FINAL_STAGES, UPSTREAM, Plan, build_plan, write_table_plan
from pl_dsl.spec import Experiment, check_file
from pl_dsl.store import write_json_if_changed


def find_spec_files(selection: str | list[str] | None, root: Path) -> list[Path]:
    """Spec files named by `--config experiments=...` (names, stems or paths; comma-separated),
    or every experiments/*.yaml when nothing is selected. Specs in subfolders of experiments/
    (real data, paper scale) run only when named."""
    folder = root / "experiments"
    if not selection:
        return sorted(folder.glob("*.yaml"))
    known = sorted(folder.rglob("*.yaml"))
    wanted = selection.split(",") if isinstance(selection, str) else list(selection)
    files: list[Path] = []
    for item in (w.strip() for w in wanted if w.strip()):
        path = Path(item)
        if path.suffix in (".yaml", ".yml") and (path.exists() or (root / path).exists()):
            files.append(path if path.exists() else root / path)
            continue
        matches = [f for f in known if f.stem == item]
        if not matches:
            names = ", ".join(f.stem for f in known) or "none"
            sys.exit(f"pl-dsl: no experiment '{item}' (experiments/: {names})")
        files.extend(matches)
    return files


def check_or_exit(files: list[Path]) -> list[Experiment]:
    """Check every spec; on any error print all of them as `pl-dsl validate` does and exit 1."""
    experiments, errors = [], []
    for file in files:
        experiment, found = check_file(file)
        errors.extend(found)
        if experiment is not None:
            experiments.append(experiment)
            # Missing data files: every job would fail, so here they stop the workflow.
            errors.extend(replace(warning, level="error") for warning in experiment.warnings)
    names = [e.name for e in experiments]
    for name in {n for n in names if names.count(n) > 1}:
        clashing = ", ".join(e.file for e in experiments if e.name == name)
        errors.append(f"experiment name '{name}' is used by several specs ({clashing}); names must be unique")
    if errors:
        print("\n".join(map(str, errors)), file=sys.stderr)
        sys.exit(1)
    return experiments


class Workflow:
    """The plan of one Snakemake invocation plus the input functions the rules call."""

    def __init__(self, config: dict[str, Any], basedir: str | Path) -> None:
        self.layout = Layout(Path(config.get("results", "results")), Path(config.get("logs", "logs")))
        self.experiments = check_or_exit(find_spec_files(config.get("experiments"), Path(basedir)))
        sizes = {**DEFAULT_BATCH_SIZE, **config.get("batch_size", {})}
        self.plan: Plan = build_plan(self.experiments, sizes, int(config.get("min_batches", DEFAULT_MIN_BATCHES)))
        self.python = sys.executable

    def batch_plan(self, stage: str) -> Callable[[Any], str]:
        """Params function: the path of the batch's unit list, written (or refreshed) now.

        It is a parameter, not an input: which runs need a unit may change without the unit
        changing, and that must not make Snakemake recompute it.
        """
        def plan_path(wildcards: Any) -> str:
            path = self.layout.batch_plan(stage, wildcards.batch)
            write_json_if_changed(path, self.plan.batches[(stage, wildcards.batch)].plan())
            return str(path)
        return plan_path

    def batch_inputs(self, stage: str) -> Callable[[Any], list[str]]:
        """Input function of a stage rule: the manifests of the upstream batches it reads."""
        def inputs(wildcards: Any) -> list[str]:
            upstream = UPSTREAM[stage]
            needs = self.plan.batches[(stage, wildcards.batch)].needs
            return [str(self.layout.manifest(upstream, b)) for b in needs] if upstream else []
        return inputs

    def gpu(self, stage: str) -> Callable[[Any], int]:
        """Resource function: 1 GPU for a batch that may run on CUDA, 0 when forced to the CPU."""
        def count(wildcards: Any) -> int:
            return int(any(u.device != "cpu" for u in self.plan.batches[(stage, wildcards.batch)].units))
        return count

    def collect_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The runs table plan of an experiment and the manifests of its final-stage batches."""
        experiment = self.plan.experiments[wildcards.experiment]
        return {"plan": write_table_plan(self.layout, experiment.table_plan()),
                "finished": [str(self.layout.manifest(stage, b)) for stage in FINAL_STAGES
                             for b in experiment.batches[stage]]}

    def plot_spec(self, wildcards: Any) -> str:
        """The plot's spec and the experiment's axes as JSON: the plot reruns only when they change."""
        experiment = self.plan.experiments[wildcards.experiment].experiment
        plot = next(p for p in experiment.spec["plots"] if p["name"] == wildcards.plot)
        return json.dumps({**plot, "axes": experiment.axes}, sort_keys=True)

    def targets(self) -> list[str]:
        """Everything `snakemake` builds by default: per experiment the table, runs and plots."""
        paths: list[Path] = []
        for name, experiment in self.plan.experiments.items():
            paths += [self.layout.table(name), self.layout.runs_dir(name)]
            for plot in experiment.experiment.spec["plots"]:
                paths += [self.layout.plot(name, plot["name"], ext) for ext in ("png", "svg")]
        return [str(p) for p in paths]

    def stage_command(self) -> str:
        """Shell command of every stage rule (train_f, attack, train_g, evaluate, theory, decision_map)."""
        return (f"{self.python} -m pl_dsl.jobs --results {self.layout.root} --log {{log}} batch "
                "--plan {params.plan} --manifest {output.manifest} --threads {threads}")
