"""Checking specs: the schema, the sweeps and panels, the runs they expand to, and what would
crash, hang or silently mean something else; every error at once, each with its place."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pl_dsl.spec.analysis import check_analysis
from pl_dsl.spec.bulk import collector_paused
from pl_dsl.spec.compose import load_composed
from pl_dsl.spec.expand import Experiment, Run, expand_runs
from pl_dsl.spec.messages import Checker, SpecError, SpecInvalid, schema_errors
from pl_dsl.spec.schema import fill_defaults
from pl_dsl.spec.sweeps import Axis, Panel, panels_of, sweep_axes, swept_paths
from pl_dsl.spec.yamlpos import YamlDocumentError

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

# Above this many runs a spec must say `max_runs:` (a confirmation that so many are meant).
RUNS_NEEDING_MAX_RUNS = 10_000
# Estimated memory of one unit: above the largest machine anyone runs on it is an error; above
# this machine's memory a warning.
LARGEST_MACHINE_BYTES = 4 * 2**40


def _non_finite_numbers(checker: Checker, value: Any, path: tuple[Any, ...]) -> None:
    """YAML has .nan and .inf, which JSON Schema's numbers accept; no field of a spec wants them."""
    if isinstance(value, float) and not math.isfinite(value):
        checker.add(path, f"{value} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _non_finite_numbers(checker, item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _non_finite_numbers(checker, item, path + (index,))


def _seed_and_seeds(checker: Checker, data: dict[str, Any]) -> None:
    """A single `seed` beside `seeds` would be ignored: say so instead."""
    if "seed" in data and "seeds" in data:
        checker.add(("seed",), "give `seed` (one run) or `seeds` (a sweep axis), not both: with `seeds`, `seed` "
                               "would be ignored", key=True)


@collector_paused()
def check_text(text: str, file: str, registry: Registry | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """Check a spec given as text; returns the experiment (when valid) and every error found.

    registry: the stages whose sections and metrics a spec may use (default: this project's).
    """
    if registry is None:
        from pl_dsl.project import project_registry

        registry = project_registry()
    try:
        doc = load_composed(text, file)
    except YamlDocumentError as exc:
        return None, [SpecError(exc.mark.file or file, exc.mark.line, exc.mark.col, "", exc.message)]
    checker = Checker(file, doc, registry.schema)
    checker.errors.extend(SpecError(e.mark.file or file, e.mark.line, e.mark.col, "", e.message) for e in doc.problems)
    if not isinstance(doc.data, dict):
        checker.add((), "an experiment spec must be a mapping of fields (name, data, network, ...)")
        return None, checker.errors
    schema_errors(checker, doc.data, checker.schema)
    _non_finite_numbers(checker, doc.data, ())
    _seed_and_seeds(checker, doc.data)
    # Sections the schema already rejected are not checked further; the others still are,
    # so one pass reports every independent mistake. A sweep axis the schema rejected (an empty
    # list, say) is left out, and the rest of the sweep is still checked.
    data = doc.data
    sweep_errors = [error.field for error in checker.errors if error.field.startswith("sweep")]
    bad_axes = {match.group(2) for field in sweep_errors if (match := _AXIS_ERROR.match(field))}
    if bad_axes and all(_AXIS_ERROR.match(f) for f in sweep_errors):
        data = _without_axes(data, bad_axes)
    broken = {error.field.split(".")[0].split("[")[0] for error in checker.errors}
    if data is not doc.data:
        broken.discard("sweep")
    spec = fill_defaults(data, root=checker.schema)
    sweeping = not broken & {"sweep", "seeds", "panels"}
    axes = sweep_axes(checker, spec) if sweeping and not spec["panels"] else []
    panels = panels_of(checker, spec) if sweeping and spec["panels"] else []
    if sweeping:
        for path, message in check_analysis(spec, panels, swept_paths(spec), registry, broken):
            checker.add(path, message)
    if not sweeping or not _run_count_fits(checker, spec, axes, panels):
        return None, _sorted(checker.errors)
    # Expanding the runs finds the rest (what sections declare wrong, fields of another data kind,
    # duplicate runs). It runs even after errors, so every error comes at once; values the schema
    # already rejected may then stop it, which adds nothing to what is reported.
    earlier = bool(checker.errors)
    try:
        runs = expand_runs(checker, spec, data, axes, panels, registry)
    except Exception:
        if not earlier:
            raise
        runs = []
    limit = _max_runs(spec)
    if limit is not None and len(runs) > limit:
        checker.add(("max_runs",), f"the spec expands to {len(runs)} runs, more than max_runs = {limit}")
    if checker.errors:
        return None, _sorted(checker.errors)
    experiment = Experiment(file, spec, runs, panels=panels)
    _memory_bounds(checker, runs, registry)
    _reference_streams(checker, runs)
    _data_sets(checker, runs, registry)
    if checker.errors:
        return None, _sorted(checker.errors)
    from pl_dsl.spec.analysis import chance_warnings

    for path, message in chance_warnings(spec, experiment, registry):
        checker.warn(path, message)
    experiment.warnings = _sorted(checker.warnings)
    return experiment, []


# A schema error at one axis of a sweep: sweep.grid["network.width"] (or its values).
_AXIS_ERROR = re.compile(r'^sweep\.(grid|zip)\["([^"]+)"\]')


def _without_axes(data: dict[str, Any], axes: set[str]) -> dict[str, Any]:
    """The spec without these sweep axes (to check the rest of it while they are in error)."""
    sweep = {form: {path: values for path, values in entries.items() if path not in axes}
             if isinstance(entries, dict) else entries for form, entries in data["sweep"].items()}
    return {**data, "sweep": {form: entries for form, entries in sweep.items() if entries != {}}}


def _sorted(errors: list[SpecError]) -> list[SpecError]:
    return sorted(dict.fromkeys(errors), key=lambda e: (e.line, e.col))


def _max_runs(spec: dict[str, Any]) -> int | None:
    """The spec's max_runs when it is a valid one (an invalid one is a schema error already)."""
    limit = spec.get("max_runs")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1 else None


def _run_count_fits(checker: Checker, spec: dict[str, Any], axes: list[Axis], panels: list[Panel]) -> bool:
    """Refuse, before expanding anything, a sweep larger than its max_runs, or above
    RUNS_NEEDING_MAX_RUNS runs without one (panels count each panel's runs: an upper bound)."""
    count = (sum(math.prod(len(axis[0][1]) for axis in panel.axes) for panel in panels) if panels
             else math.prod(len(axis[0][1]) for axis in axes))
    where = ("panels",) if panels else ("sweep",) if spec.get("sweep") else ("seeds",)
    limit = _max_runs(spec)
    if limit is None and count > RUNS_NEEDING_MAX_RUNS:
        if "max_runs" not in spec:  # an invalid max_runs is reported already; still do not expand
            checker.add(where, f"the spec expands to {count} runs; above {RUNS_NEEDING_MAX_RUNS} runs write "
                               f"`max_runs: {count}` to confirm that so many are meant", key=True)
        return False
    if limit is not None and not panels and count > limit:
        checker.add(("max_runs",), f"the spec expands to {count} runs, more than max_runs = {limit}")
        return False
    return True


def _reference_streams(checker: Checker, runs: list[Run]) -> None:
    """Runs with `rng: reference` must be runs the authors' script makes (science.reference.SUPPORTED):
    each other value once, at its field."""
    replaying = [run for run in runs if run.config.rng == "reference"]
    if not replaying:
        return  # torch is imported only for such specs
    from pl_dsl.science.reference import unsupported

    reported: set[str] = set()
    for run in replaying:
        for path, sentence in unsupported(run.config):
            if path not in reported:
                reported.add(path)
                checker.add(tuple(path.split(".")), sentence)


def _memory_bounds(checker: Checker, runs: list[Run], registry: Registry) -> None:
    """The largest unit's estimated memory (the stages' declared `memory`): an error beyond any
    machine, a warning beyond this one."""
    peak: tuple[float, str, Run] | None = None
    estimates: dict[tuple[str, Any], float] = {}  # per stage and point (the runs share most)
    for run in runs:
        for stage in registry:
            if stage.enabled(run.config):
                point = (stage.name, stage.point(run.config))
                if point not in estimates:
                    estimates[point] = float(stage.memory(stage.select(run.config)))
                if peak is None or estimates[point] > peak[0]:
                    peak = (estimates[point], stage.name, run)
    if peak is None:
        return
    estimate, stage_name, run = peak
    values = ", ".join(f"{k}={v}" for k, v in run.varied.items())
    text = f"run {run.id}{f' ({values})' if values else ''}: {stage_name} would need about {estimate / 2**30:.1f} GiB"
    anchor = ("data",) if checker.doc and ("data",) in checker.doc.values else ()
    if estimate > LARGEST_MACHINE_BYTES:
        checker.add(anchor, f"{text}, more than any machine has ({LARGEST_MACHINE_BYTES / 2**40:.0f} TiB); "
                            "make the data or the network smaller")
        return
    available = _machine_memory()
    if available and estimate > available:
        checker.warn(anchor, f"{text}, more than this machine's {available / 2**30:.1f} GiB; "
                             "run it on a larger machine or a cluster")


def _machine_memory() -> float:
    """This machine's physical memory in bytes (0 where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0


def _data_sets(checker: Checker, runs: list[Run], registry: Registry) -> None:
    """Every data-set field of every run, wherever it sits: a warning when its files cannot be
    found (every job would fail: Snakemake refuses to start), an error when the files found are
    another data set's (by their published checksums), a warning once per folder when they match
    no published checksum, an error when it asks for more samples of a class than the data set
    has (known when the files are there)."""
    from pl_dsl.science.datasets import REAL_DATASETS, DataNotFound, class_sizes, identify, passed_over
    from pl_dsl.spec.sections import data_set_paths

    seen: set[tuple[str, str, str | None, Any, Any, Any]] = set()
    noted: set[Any] = set()  # folders of unverified files, warned about once
    for run in runs:
        for path in data_set_paths(registry.sections):
            data: Any = run.config
            for part in path.split("."):
                data = getattr(data, part, None)
            if data is None or data.kind not in REAL_DATASETS:
                continue
            key = (path, data.kind, data.root, data.classes, data.n_train, data.n_test)
            if key in seen:
                continue
            seen.add(key)
            anchor = (*path.split("."), "kind")
            try:
                files = identify(data.kind, data.root)
            except DataNotFound as exc:
                checker.warn(anchor, str(exc), stops_runs=True)
                continue
            if files.problem() is not None:  # another data set's files: never read them as this one
                checker.add(anchor, str(files.problem()))
                continue
            if files.note() is not None and files.folder not in noted:
                noted.add(files.folder)
                checker.warn(anchor, str(files.note()))
            for folder, missing in passed_over(data.kind, data.root, files.folder):
                if folder not in noted:
                    noted.add(folder)
                    checker.warn(anchor, f"{folder} holds only part of {REAL_DATASETS[data.kind].title} (it lacks "
                                         f"{', '.join(missing)}), so it was passed over: the files are read from "
                                         f"{files.folder}")
            sizes = class_sizes(data.kind, data.root)
            if sizes is None or data.classes is None:
                continue
            for split, count in (("train", data.n_train), ("test", data.n_test)):
                for cls, want in zip(data.classes, ((count + 1) // 2, count // 2) if count else ()):
                    have = sizes[split].get(cls, 0)
                    if want > have:
                        field = (*path.split("."), f"n_{split}")
                        where = field if checker.doc and field in checker.doc.values else ("sweep",)
                        checker.add(where, f"n_{split} = {count} asks for {want} samples of class {cls} (half of it), "
                                           f"but the {REAL_DATASETS[data.kind].title} {split} split has {have}")


def check_file(path: str | Path, registry: Registry | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """Check one spec file; a missing or unreadable file is an error like any other."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [SpecError(file, 1, 1, "", f"cannot read the file: {reason}")]
    return check_text(text, file, registry)


def load_experiment(path: str | Path, registry: Registry | None = None) -> Experiment:
    """Load a spec that must be valid; raises SpecInvalid with every error otherwise."""
    experiment, errors = check_file(path, registry)
    if errors or experiment is None:
        raise SpecInvalid(errors)
    return experiment
