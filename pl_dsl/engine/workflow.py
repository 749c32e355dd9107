"""What the Snakefile needs from pl-dsl: the checked experiments, their batches, and targets.

Imported at every Snakemake start, so it must stay free of torch and plotting imports. The
input, params and resource functions only compute names and numbers; the plan files the jobs
read are written once, by `write_plans`, from the workflow's `onstart` handler (so a dry run
writes nothing).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pl_dsl.engine.names import NotFound, spec_files
from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import (
    DEFAULT_FUSE_SECONDS,
    DEFAULT_MIN_BATCHES,
    DEFAULT_STACK_MEMORY_GB,
    FUSED,
    STACK_MODES,
    Batch,
    Plan,
    build_plan,
    table_plan_digest,
)
from pl_dsl.engine.registry import Registry, stage_modules
from pl_dsl.engine.store import damage, read_json, write_json_if_changed
from pl_dsl.hashing import stable_hash
from pl_dsl.report.jobs import description, report_job, summary
from pl_dsl.spec.bulk import collector_paused
from pl_dsl.spec.check import check_file
from pl_dsl.spec.expand import Experiment
from pl_dsl.suggest import did_you_mean

# The --config keys the workflow reads (see the README); any other key is a mistake.
CONFIG_KEYS = ("experiments", "results", "logs", "min_batches", "batch_size", "fuse_seconds", "threads", "max_runtime",
               "verify", "stage_modules", "missing_data", "force", "stack", "stack_memory_gb")


def check_config(config: dict[str, Any]) -> None:
    """Refuse --config keys the workflow does not know, naming the close one and every known one,
    and a `stack` mode it does not know."""
    if "stack" in config and config["stack"] not in STACK_MODES:
        sys.exit(f"pl-dsl: --config stack={config['stack']}: use one of {', '.join(STACK_MODES)}")
    unknown = sorted(key for key in config if key not in CONFIG_KEYS)
    if unknown:
        lines = [f"pl-dsl: unknown --config key '{key}'{did_you_mean(key, CONFIG_KEYS)}" for key in unknown]
        lines.append(f"known keys: {', '.join(sorted(CONFIG_KEYS))}. To change a field of a spec for one run, "
                     "use `pl-dsl run SPEC FIELD=VALUE` (e.g. training.lr=0.1).")
        sys.exit("\n".join(lines))


def check_or_exit(files: list[Path], registry: Registry, skip_missing_data: bool = False) -> list[Experiment]:
    """Check every spec; on any error print all of them as `pl-dsl validate` does and exit 1.

    A spec whose data files are missing is an error too (every job would fail), unless
    skip_missing_data: then it is left out with a note.
    """
    experiments: list[Experiment] = []
    errors: list[object] = []
    for file in files:
        experiment, found = check_file(file, registry)
        errors.extend(found)
        if experiment is None:
            continue
        stopping = [warning for warning in experiment.warnings if warning.stops_runs]
        for warning in experiment.warnings:
            if not warning.stops_runs:
                print(warning, file=sys.stderr)
        if stopping and skip_missing_data:
            missing = stopping[0].message.split(" Looked in")[0]
            print(f"pl-dsl: skipping {file}: its data files are missing ({missing})", file=sys.stderr)
            continue
        experiments.append(experiment)
        errors.extend(replace(warning, level="error") for warning in stopping)
    names = [e.name for e in experiments]
    for name in {n for n in names if names.count(n) > 1}:
        clashing = ", ".join(e.file for e in experiments if e.name == name)
        errors.append(f"experiment name '{name}' is used by several specs ({clashing}); names must be unique")
    if errors:
        print("\n".join(map(str, errors)), file=sys.stderr)
        sys.exit(1)
    return experiments


def refuse_name_clashes(experiments: list[Experiment], layout: Layout) -> None:
    """Exit when an experiment's results folder holds the results of another spec with the same
    name (see name_clashes)."""
    clashes = name_clashes(experiments, layout)
    if clashes:
        sys.exit("\n".join(clashes))


def name_clashes(experiments: list[Experiment], layout: Layout) -> list[str]:
    """Why each experiment whose results folder holds the results of another spec with the same
    name (another file, other content) may not run: running would overwrite them. `--config
    force=1` (`pl-dsl run --force`) replaces them; the same file edited is simply rerun."""
    clashes = []
    for experiment in experiments:
        path = layout.source(experiment.name)
        if not path.exists():
            continue
        try:
            recorded = read_json(path)
        except (OSError, ValueError):
            continue
        current = experiment.source()
        if recorded.get("spec") != current["spec"] and recorded.get("sha256") != current["sha256"]:
            clashes.append(f"pl-dsl: {layout.experiment(experiment.name)} holds the results of {recorded.get('spec')}, "
                           f"and {current['spec']} has the same name '{experiment.name}': rename one of them, or "
                           "replace those results with --config force=1 (pl-dsl run --force)")
    return clashes


def load_registry(config: dict[str, Any]) -> Registry:
    """pl-dsl's stages plus the project's own: those named in its pl-dsl.toml or pyproject.toml
    (see pl_dsl.project), or in `--config stage_modules=pkg.module,...` instead."""
    from pl_dsl.project import ProjectError, project_registry

    override = tuple(stage_modules(config["stage_modules"])) if "stage_modules" in config else None
    try:
        return project_registry(override)
    except ProjectError as exc:
        sys.exit(f"pl-dsl: {exc}")


# A unit without a folder in the store: not computed yet (what `damage` says is only worded
# where a finished batch lacks it).
_NOT_STORED = "not stored"


class SnakemakeBridge:
    """Between pl-dsl and Snakemake (whose own object is `workflow`): the checked plan of one
    invocation, and the input, params, resource and shell functions the rules call (`BRIDGE`)."""

    @collector_paused()
    def __init__(self, config: dict[str, Any], basedir: str | Path, reporting: bool = False,
                 check_store: bool = True, cores: int | None = None) -> None:
        check_config(config)
        self.layout = Layout(Path(config.get("results", "results")), Path(config.get("logs", "logs")))
        self.registry = load_registry(config)
        self.modules = list(self.registry.extra_modules)
        try:
            files = spec_files(config.get("experiments"), self.layout, Path(basedir))
        except NotFound as exc:
            sys.exit(f"pl-dsl: {exc}")
        self.experiments = check_or_exit(files, self.registry, skip_missing_data=config.get("missing_data") == "skip")
        if check_store and not config.get("force"):
            refuse_name_clashes(self.experiments, self.layout)
        # The local cores the plan shares out (never more than the machine has); None on a cluster.
        self.cores = min(cores, os.cpu_count() or 1) if cores else None
        self.fixed_threads = int(config.get("threads", 0))
        self.plan: Plan = build_plan(self.experiments, self.registry, config.get("batch_size", {}),
                                     int(config.get("min_batches", self.cores or DEFAULT_MIN_BATCHES)),
                                     float(config.get("fuse_seconds", DEFAULT_FUSE_SECONDS)),
                                     str(config.get("stack", "auto")),
                                     float(config.get("stack_memory_gb", DEFAULT_STACK_MEMORY_GB)))
        self.python = sys.executable
        self.max_runtime = int(config["max_runtime"]) if config.get("max_runtime") else None
        self.reporting = reporting
        # Each experiment's table plan and the path it is stored under (named by its content).
        self.tables = {name: (self.layout.table_plan(table_plan_digest(content)), content)
                       for name, content in ((n, e.table_plan()) for n, e in self.plan.experiments.items())}
        self._resources: dict[tuple[str, str], dict[str, int]] = {}  # per batch, see `_batch_resources`
        self.report_specs: dict[Path, Any] = {}  # the specs of plot, figure and claims jobs, by path
        self.repairs: dict[tuple[str, str], list[str]] = {}  # batch -> keys of its units to recompute
        self.repair_tag = ""
        # Batches whose units are all stored and intact: they leave the DAG, so that a finished
        # experiment has nothing to do whatever --cores (which shapes the batches) is given.
        self.complete: set[tuple[str, str]] = set()
        # The main process reads the store; a cluster job step trusts it and only reads manifests.
        self.checks_store = check_store
        if check_store:
            self._check_store(deep=config.get("verify") == "full", report_damage=not reporting)
        self.rule_batches: dict[str, list[str]] = {}  # the batches each rule will run
        for rule, batch_id in self.plan.batches:
            if (rule, batch_id) not in self.complete:
                self.rule_batches.setdefault(rule, []).append(batch_id)

    def _check_store(self, deep: bool = False, report_damage: bool = True) -> None:
        """Read the state of every planned unit once. Stored units of finished batches whose
        files no longer match their records (missing, truncated, changed in place) are damaged:
        they and every planned unit that depends on them are recomputed, under new manifest names
        so that Snakemake sees the work. Sizes and records are always checked, sha256 where a
        file's time changed, or for every file when deep (`--config verify=full`). Batches whose
        units are all intact are complete. Reads only: a dry run shows the repair, writes nothing."""
        problems: dict[str, str | None] = {}
        damaged: dict[str, str] = {}
        signature: list[tuple[str, str, int]] = []
        folders: dict[str, set[str]] = {}  # per stage, the units with a folder in the store (listed once)
        for (stage, batch_id), batch in self.plan.batches.items():
            manifest = self.layout.manifest(stage, batch_id)
            finished = manifest.exists()
            for unit in batch.units:
                if unit.stage not in folders:
                    folders[unit.stage] = self.layout.unit_folders(unit.stage)
                if unit.key not in problems:
                    problems[unit.key] = damage(self.layout.unit(unit.stage, unit.key), deep=deep) \
                        if unit.key in folders[unit.stage] else _NOT_STORED
                problem = problems[unit.key]
                if finished and problem is not None and unit.key not in damaged:
                    folder = self.layout.unit(unit.stage, unit.key)
                    if problem is _NOT_STORED:
                        problem = damage(folder, deep=deep) or problem
                    damaged[unit.key] = problem
                    record = folder / "record.json"
                    when = (record if record.exists() else manifest).stat().st_mtime_ns
                    signature.append((unit.key, problem, when))
        invalid = set(damaged)
        if damaged:
            for _ in self.registry:  # stages in order: one pass per stage reaches every dependent
                for batch in self.plan.batches.values():
                    invalid.update(u.key for u in batch.units if set(u.inputs.values()) & invalid)
            for (stage, batch_id), batch in self.plan.batches.items():
                keys = [u.key for u in batch.units if u.key in invalid]
                if keys:
                    self.repairs[(stage, batch_id)] = keys
            self.repair_tag = stable_hash(sorted(signature), 8)
            if report_damage:
                lines = [f"  {problem}" for problem in damaged.values()]
                print(f"pl-dsl: {len(damaged)} stored unit(s) are damaged; they and the {len(invalid) - len(damaged)} "
                      "unit(s) computed from them are recomputed:\n" + "\n".join(lines), file=sys.stderr)
        self.complete = {name for name, batch in self.plan.batches.items()
                         if all(problems[u.key] is None and u.key not in invalid for u in batch.units)}

    def _manifests(self, batches: list[tuple[str, str]]) -> list[str]:
        """The manifests a job waits for: those of the given batches that are not complete. A
        cluster job step (which does not read the store) takes those that exist: the main process
        submitted it once every batch it reads was finished or complete."""
        paths = [self.layout.manifest(rule, self.manifest_name(rule, batch_id)) for rule, batch_id in batches
                 if (rule, batch_id) not in self.complete]
        return [str(path) for path in paths if self.checks_store or path.exists()]

    def manifest_name(self, stage: str, batch_id: str) -> str:
        """The name of a batch's manifest in this invocation: its id, or its id and the repair tag
        while some of its units must be recomputed."""
        return self.layout.manifest_name(batch_id, self.repair_tag if (stage, batch_id) in self.repairs else "")

    def batch(self, stage: str, name: str) -> Batch:
        """The batch a manifest name (with or without a repair tag) stands for."""
        return self.plan.batches[(stage, self.layout.batch_id(name))]

    @property
    def rules(self) -> list[str]:
        """The batch rules: fused components, then one per registered stage."""
        return [FUSED, *self.registry.names]

    def write_plans(self) -> None:
        """Write every pending batch's unit list, every experiment's table plan and the spec each
        results folder belongs to (unchanged files are left alone, so their times do not move).
        Called once, when the workflow starts (a dry run writes nothing)."""
        for (stage, batch_id), batch in self.plan.batches.items():
            if (stage, batch_id) in self.complete:
                continue
            content = {**batch.plan(), "recompute": self.repairs.get((stage, batch_id), [])}
            write_json_if_changed(self.layout.batch_plan(stage, batch_id), content)
        for path, content in self.tables.values():
            write_json_if_changed(path, content)
        for name, experiment in self.plan.experiments.items():  # which spec each results folder belongs to
            write_json_if_changed(self.layout.source(name), experiment.experiment.source())
        for path, content in self.report_specs.items():
            write_json_if_changed(path, content)

    def _spec_file(self, content: dict[str, Any]) -> str:
        """Params value of a plot, figure or claims job: the path of its spec (written at start),
        named by content, so the job reruns exactly when its spec changes and the report shows a
        path instead of escaped JSON."""
        path = self.layout.report_spec(stable_hash(content, 16))
        self.report_specs[path] = content
        return str(path)

    def batch_plan(self, stage: str) -> Callable[[Any], str]:
        """Params function: the path of the batch's unit list.

        It is a parameter, not an input: which runs need a unit may change without the unit
        changing, and that must not make Snakemake recompute it.
        """
        def plan_path(wildcards: Any) -> str:
            return str(self.layout.batch_plan(stage, self.batch(stage, wildcards.batch).id))
        return plan_path

    def batch_inputs(self, stage: str) -> Callable[[Any], list[str]]:
        """Input function of a stage rule: the manifests of the batches whose units it reads."""
        def inputs(wildcards: Any) -> list[str]:
            return self._manifests(self.batch(stage, wildcards.batch).needs)
        return inputs

    def resource(self, stage: str, name: str) -> Callable[[Any], int]:
        """Resource function: a batch's `runtime` or `mem_mb` from the cost model (see
        `Batch.resources`); `--config max_runtime=MINUTES` caps the runtime."""
        def value(wildcards: Any) -> int:
            return self._batch_resources(stage, wildcards.batch)[name]
        return value

    def gpu(self, rule: str) -> Callable[[Any], int]:
        """Resource function: 1 GPU for a batch with a unit that may run on CUDA, else 0."""
        def count(wildcards: Any) -> int:
            return self._batch_resources(rule, wildcards.batch)["gpu"]
        return count

    def _batch_resources(self, rule: str, name: str) -> dict[str, int]:
        """A batch's `runtime`, `mem_mb` and `gpu`, worked out once (Snakemake asks for each
        several times per job)."""
        batch = self.batch(rule, name)
        if (rule, batch.id) not in self._resources:
            gpu = int(any(self.registry[u.stage].gpu and u.device != "cpu" for u in batch.units))
            self._resources[(rule, batch.id)] = {**batch.resources(self.max_runtime), "gpu": gpu}
        return self._resources[(rule, batch.id)]

    def threads(self, rule: str) -> Callable[[Any], int]:
        """Threads function: the cores Snakemake was given, shared among the rule's batches
        (they tend to run at the same time): one large run gets every core as torch threads, a
        sweep one thread per job. `--config threads=N` fixes it; on a cluster (no local core
        count) each job takes 1 unless set."""
        def count(wildcards: Any) -> int:
            if self.fixed_threads:
                return self.fixed_threads
            if not self.cores:
                return 1
            return max(1, self.cores // max(1, len(self.rule_batches.get(rule, []))))
        return count

    def collect_inputs(self, wildcards: Any) -> list[str]:
        """The manifests of an experiment's leaf-stage batches (every unit of every run) that are
        not complete already."""
        return self._manifests(self.plan.experiments[wildcards.experiment].final_batches())

    def collect_repair(self, wildcards: Any) -> str:
        """Params function: the repair tag while some of the experiment's units are recomputed
        (else ''), so that collecting its table reruns and waits for the repaired batches."""
        experiment = self.plan.experiments[wildcards.experiment]
        batches = [(rule, batch_id) for rule, ids in experiment.batches.items() for batch_id in ids]
        return self.repair_tag if any(batch in self.repairs for batch in batches) else ""

    def table_plan(self, wildcards: Any) -> str:
        """Params function: the path of the experiment's table plan, named by its content, so a
        changed table (runs added, a stage switched on) reruns the collection."""
        return str(self.tables[wildcards.experiment][0])

    def _experiment(self, wildcards: Any) -> Experiment:
        return self.plan.experiments[wildcards.experiment].experiment

    def report_input(self, kind: str) -> Callable[[Any], str]:
        """Params function of a report job (`kind` in report.jobs.REPORT_JOBS, its item named by
        the wildcard of that name): the path of the job's input, written at start."""
        def path(wildcards: Any) -> str:
            return self._spec_file(report_job(kind).inputs(self._experiment(wildcards), getattr(wildcards, kind, "")))
        return path

    def report_caption(self, kind: str) -> Callable[[Any], str]:
        """Params function: a report job's caption in Snakemake's report."""
        def caption(wildcards: Any) -> str:
            return report_job(kind).caption(self._experiment(wildcards), getattr(wildcards, kind, ""))
        return caption

    def description(self, wildcards: Any) -> str:
        """The experiment's description, the caption of its table."""
        return description(self._experiment(wildcards))

    def report_description(self, basedir: str | Path) -> str:
        """The report's opening text: while reporting, the summary of every experiment's claims
        and figures (see report.jobs.summary), written next to the results; else the static text."""
        static = Path(basedir) / "report" / "workflow.rst"
        if not self.reporting:
            return str(static)
        experiments = {name: planned.experiment for name, planned in self.plan.experiments.items()}
        path = self.layout.root / "report" / "summary.rst"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(summary(static.read_text(encoding="utf-8"), experiments, self.layout), encoding="utf-8")
        return str(path.resolve())

    def targets(self) -> list[str]:
        """Everything `snakemake` builds by default: per experiment the table, runs, plots,
        figures and claims."""
        paths: list[Path] = []
        for name, experiment in self.plan.experiments.items():
            spec = experiment.experiment.spec
            paths += [self.layout.table(name), self.layout.runs_dir(name)]
            for plot in spec["plots"]:
                paths += [self.layout.plot(name, plot["name"], ext) for ext in ("png", "svg")]
            for figure in spec["figures"]:
                paths += [self.layout.figure(name, figure["name"], ext) for ext in ("png", "svg")]
            if spec["claims"]:
                paths.append(self.layout.claims(name))
        if self.reporting:  # a report covers what has been computed, not what could be
            paths = [p for p in paths if p.exists()]
        return [str(p) for p in paths]

    def report_command(self, kind: str, outputs: tuple[str, ...]) -> str:
        """Shell command of a report rule: its job by kind, the input, the experiment, its table
        and each named output (`{output.<name>}`)."""
        outs = "".join(f" --out {name}={{output.{name}}}" for name in outputs)
        return self.job_command("report") + (f" --kind {kind} --input {{params.input:q}} --experiment {{wildcards.experiment}}"
                                              f" --table {{input.table}}{outs}")

    def job_command(self, job: str) -> str:
        """The start of every job's shell command (`python -m pl_dsl.engine.jobs ... JOB`)."""
        modules = f" --stage-modules {','.join(self.modules)}" if self.modules else ""
        return f"{self.python} -m pl_dsl.engine.jobs --results {self.layout.root} --log {{log}}{modules} {job}"

    def stage_command(self) -> str:
        """Shell command of every stage rule."""
        return self.job_command("batch") + (" --plan {params.plan} --manifest {output.manifest} --threads {threads}"
                                            " --requested 'mem_mb={resources.mem_mb} runtime={resources.runtime}'")
