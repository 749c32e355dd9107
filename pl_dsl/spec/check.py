"""Reading, checking and expanding experiment specs: every error at once, each with its place."""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from pl_dsl.hashing import stable_hash
from pl_dsl.science.datasets import data_kind
from pl_dsl.spec.analysis import check_analysis, metric_problems
from pl_dsl.spec.config import RunConfig, resolve, to_json
from pl_dsl.spec.schema import field_paths, fill_defaults, load_schema, subschema
from pl_dsl.spec.yamlpos import LocatedDocument, Mark, YamlDocumentError, load_located
from pl_dsl.suggest import did_you_mean

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

# Top-level fields that describe the experiment rather than a run; they cannot be swept.
NOT_SWEEPABLE = ("name", "description", "sweep", "plots", "seeds", "panels", "figures", "claims", "max_runs")


@dataclass(frozen=True)
class SpecError:
    """One problem in a spec file, printed as `file:line:col: field.path: sentence`."""

    file: str
    line: int
    col: int
    field: str
    message: str
    level: str = "error"  # "warning": reported by `pl-dsl validate` without failing
    stops_runs: bool = False  # a warning that makes every job fail (missing data): snakemake refuses to start

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file  # line 0: not in a file
        message = f"warning: {self.message}" if self.level == "warning" else self.message
        return f"{where}: {self.field}: {message}" if self.field else f"{where}: {message}"


@dataclass
class Run:
    """One point of an experiment's sweep: its id, the values varied there, and its resolved
    configuration (typed, and as plain JSON in `spec`)."""

    id: str
    varied: dict[str, Any]
    config: RunConfig
    panels: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        data: dict[str, Any] = to_json(self.config)
        return data

    @property
    def resolved(self) -> dict[str, Any]:
        """Values worth a column of their own that no spec states directly (eps = c * sqrt(d))."""
        return {"eps": self.config.attack.eps}


@dataclass
class Experiment:
    """A checked spec: its file, the spec with defaults filled in, and its runs in sweep order."""

    file: str
    spec: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def source(self) -> dict[str, str]:
        """The spec file that defines this experiment: its absolute path and the sha256 of its text."""
        import hashlib

        path = Path(self.file).resolve()
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:  # a spec checked from text, not from a file
            digest = ""
        return {"spec": str(path), "sha256": digest}

    @property
    def axes(self) -> list[str]:
        """Every swept field path (with panels: every panel's factor and set fields too), in order."""
        return swept_paths(self.spec)


class SpecInvalid(Exception):
    """Raised by `load_experiment` with every error found."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


def format_path(path: Iterable[Any]) -> str:
    """`("plots", 0, "y")` -> `plots[0].y`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in str(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else str(part)
    return text


class _Checker:
    """Collects the errors of one file."""

    def __init__(self, file: str, doc: LocatedDocument | None) -> None:
        self.file = file
        self.doc = doc
        self.errors: list[SpecError] = []
        self.warnings: list[SpecError] = []

    def add(self, path: tuple[Any, ...], message: str, *, key: bool = False, mark: Mark | None = None) -> None:
        mark = mark or (self.doc.locate(path, key=key) if self.doc else Mark(1, 1))
        self.errors.append(SpecError(self.file, mark.line, mark.col, format_path(path), message))


# JSON Schema's `integer` admits 20.0; sizes and counts written as floats break torch, so a
# spec's integers must be written as integers.
SpecValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))
# Above this many runs a spec must say `max_runs:` (a confirmation that so many are meant).
RUNS_NEEDING_MAX_RUNS = 10_000
# Estimated memory of one unit: above the largest machine anyone runs on it is an error; above
# this machine's memory a warning.
LARGEST_MACHINE_BYTES = 4 * 2**40


def _describe_schema_error(error: jsonschema.ValidationError) -> list[tuple[tuple[Any, ...], str, bool]]:
    """Turn one jsonschema error into (path, sentence, points-at-key) triples a user can act on."""
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in schema.get("properties", {})]
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return [(path + (k,), f"unknown field{did_you_mean(str(k), allowed)}{hint}", True) for k in extra]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(path, f"missing required field '{missing}'", False)]
    if error.validator == "enum":
        options = ", ".join(map(str, error.validator_value))
        return [(path, f"{error.instance!r} is not one of: {options}", False)]
    if error.validator == "type":
        hint = ""
        if error.validator_value == "integer" and isinstance(error.instance, float) and error.instance.is_integer():
            hint = f": write {int(error.instance)} (a whole number without a decimal point)"
        return [(path, f"expected {error.validator_value}, got {type(error.instance).__name__} "
                       f"{error.instance!r}{hint}", False)]
    if error.validator == "oneOf" and schema.get("description"):
        return [(path, f"{error.instance!r} does not fit: {schema['description']}", False)]
    if error.validator == "pattern":
        rule = schema.get("description") or f"must match {error.validator_value}"
        return [(path, f"{_short(error.instance)} is not allowed: {rule}", False)]
    if error.validator == "maxLength":
        return [(path, f"{_short(error.instance)} has {len(error.instance)} characters; at most "
                       f"{error.validator_value} are allowed", False)]
    if error.validator == "maximum" and "At most" in schema.get("description", ""):
        why = schema["description"].split("At most", 1)[1].split(":", 1)[-1].strip().rstrip(".")
        return [(path, f"{error.instance!r} is more than the largest allowed value, {error.validator_value}: {why}",
                 False)]
    return [(path, error.message, False)]


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _schema_errors(checker: _Checker, data: Any, schema: dict[str, Any], prefix: tuple[Any, ...] = (),
                   mark: Mark | None = None) -> None:
    validator = SpecValidator(schema)
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        for path, message, at_key in _describe_schema_error(error):
            checker.add(prefix + path, message, key=at_key, mark=mark)


Axis = list[tuple[str, list[Any]]]  # (path, values) pairs that advance together


class _Axes:
    """Builds the axes of one sweep (the spec's, or one panel's), reporting bad paths and values."""

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker
        self.axes: list[Axis] = []
        self.seen: dict[str, tuple[Any, ...]] = {}

    def field(self, path: str, where: tuple[Any, ...], role: str = "swept") -> dict[str, Any] | None:
        """The schema of a field that may be swept or set, or None (with an error)."""
        head = path.split(".")[0]
        if head in NOT_SWEEPABLE:
            hint = "; list the seeds in `seeds`" if head == "seeds" else ""
            self.checker.add(where, f"'{path}' cannot be {role}{hint}", key=True)
            return None
        sub = subschema(path)
        if sub is None:
            self.checker.add(where, f"'{path}' is not a field of the spec{did_you_mean(path, field_paths())}", key=True)
            return None
        if sub.get("type") == "object":
            self.checker.add(where, f"'{path}' is a section; {role.replace('swept', 'sweep')} one of its fields", key=True)
            return None
        return sub

    def value_errors(self, path: str, sub: dict[str, Any], value: Any, where: tuple[Any, ...], what: str) -> bool:
        """Check one value against the field's schema; True if it fits."""
        checker = self.checker
        before = len(checker.errors)
        _schema_errors(checker, value, {**sub, "$defs": load_schema()["$defs"]},
                       mark=checker.doc.locate(where) if checker.doc else None)
        for i in range(before, len(checker.errors)):
            err = checker.errors[i]
            checker.errors[i] = SpecError(err.file, err.line, err.col, format_path(where), f"{what} for '{path}': {err.message}")
        return len(checker.errors) == before

    def accept(self, path: str, values: list[Any], where: tuple[Any, ...], unique: bool) -> bool:
        sub = self.field(path, where)
        if sub is None:
            return False
        if path in self.seen:
            self.checker.add(where, f"'{path}' is swept twice (also at {format_path(self.seen[path])})", key=True)
            return False
        self.seen[path] = where
        ok = True
        for index, value in enumerate(values):
            if unique and value in values[:index]:
                self.checker.add(where + (index,), f"{value!r} is listed twice; each swept value gives a run")
                ok = False
                continue
            ok = self.value_errors(path, sub, value, where + (index,), "swept value") and ok
        return ok

    def grid(self, path: str, values: list[Any], where: tuple[Any, ...]) -> None:
        if self.accept(path, values, where, unique=True):
            self.axes.append([(path, values)])

    def zip(self, group: dict[str, list[Any]], where: tuple[Any, ...]) -> None:
        lengths = {len(v) for v in group.values()}
        if len(lengths) > 1:
            detail = ", ".join(f"{p}: {len(v)}" for p, v in group.items())
            self.checker.add(where, f"zipped lists must have equal lengths ({detail})")
            return
        members = [(p, v) for p, v in group.items() if self.accept(p, v, where + (p,), unique=False)]
        if len(members) != len(group):
            return
        tuples = list(zip(*group.values()))
        repeats = [i for i, t in enumerate(tuples) if t in tuples[:i]]
        for index in repeats:
            self.checker.add(where + (next(iter(group)), index),
                             f"zipped values {dict(zip(group, tuples[index]))} are listed twice; each gives a run")
        if not repeats:
            self.axes.append(members)

    def seeds(self, seeds: list[int], where: tuple[Any, ...]) -> None:
        if "seed" in self.seen:
            self.checker.add(where, f"'seed' is swept twice (also at {format_path(self.seen['seed'])})", key=True)
        else:
            self.axes.append([("seed", list(seeds))])


def _common_axes(builder: _Axes, spec: dict[str, Any], replaced: dict[str, tuple[list[Any], tuple[Any, ...]]]) -> None:
    """The spec's sweep.grid (with `replaced` paths' values and places swapped in), its zip groups."""
    sweep = spec.get("sweep", {})
    for path, values in sweep.get("grid", {}).items():
        values, where = replaced.pop(path, (values, ("sweep", "grid", path)))
        builder.grid(path, values, where)
    for path, (values, where) in replaced.items():  # a panel's own extra axes
        builder.grid(path, values, where)
    for index, group in enumerate(sweep.get("zip", [])):
        builder.zip(group, ("sweep", "zip", index))


def _sweep_axes(checker: _Checker, spec: dict[str, Any]) -> list[Axis]:
    """Axes of the sweep in order: each grid path, each zip group, then the seeds."""
    builder = _Axes(checker)
    _common_axes(builder, spec, {})
    if "seeds" in spec:
        builder.seeds(spec["seeds"], ("seeds",))
    return builder.axes


@dataclass
class Panel:
    """One one-factor sweep: its factor (the field on x, and every field varied with it), the
    base overrides it sets, and its axes."""

    name: str
    x: str
    factor: list[str]
    set: dict[str, Any]
    axes: list[Axis]
    runs: list[str] = field(default_factory=list)


def _panels(checker: _Checker, spec: dict[str, Any]) -> list[Panel]:
    """Every panel with its axes: its factor first, then the common axes (its own grid paths
    replace or extend sweep.grid), then its seeds or the spec's."""
    panels: list[Panel] = []
    names: dict[str, int] = {}
    for index, panel in enumerate(spec.get("panels", [])):
        where = ("panels", index)
        if panel["name"] in names:
            checker.add(where + ("name",), f"panel name '{panel['name']}' is used twice (also panels[{names[panel['name']]}])")
        names.setdefault(panel["name"], index)
        builder = _Axes(checker)
        set_fields = panel.get("set", {})
        for path, value in set_fields.items():
            sub = builder.field(path, where + ("set", path), role="set")
            if sub is not None:
                builder.value_errors(path, sub, value, where + ("set", path), "value")
        ((key, vary),) = panel["vary"].items()
        if key == "zip":
            builder.zip(vary, where + ("vary", "zip"))
            factor = list(vary)
        else:
            builder.grid(key, vary, where + ("vary", key))
            factor = [key]
        x = panel.get("x", factor[0])
        if x not in factor:
            checker.add(where + ("x",), f"'{x}' is not varied by this panel; it varies: {', '.join(factor)}")
        replaced = {path: (values, where + ("grid", path)) for path, values in panel.get("grid", {}).items()}
        _common_axes(builder, spec, replaced)
        if "seeds" in panel:
            builder.seeds(panel["seeds"], where + ("seeds",))
        elif "seeds" in spec:
            builder.seeds(spec["seeds"], ("seeds",))
        for path in set_fields:  # a swept value would silently replace the set one
            if path in builder.seen:
                checker.add(where + ("set", path), f"'{path}' is both set and swept for this panel (also at "
                                                   f"{format_path(builder.seen[path])})", key=True)
        panels.append(Panel(panel["name"], x, factor, dict(set_fields), builder.axes))
    return panels


def swept_paths(spec: dict[str, Any]) -> list[str]:
    """Every field path the spec sweeps (panel factors and set fields, grid, zip groups, seeds), in order."""
    sweep = spec.get("sweep", {})
    paths: list[str] = []
    for panel in spec.get("panels", []):
        ((key, vary),) = panel["vary"].items()
        paths += [*(vary if key == "zip" else [key]), *panel.get("set", {}), *panel.get("grid", {})]
    paths += list(sweep.get("grid", {})) + [p for group in sweep.get("zip", []) for p in group]
    if "seeds" in spec or any("seeds" in panel for panel in spec.get("panels", [])):
        paths.append("seed")
    return list(dict.fromkeys(paths))


def get_path(spec: dict[str, Any], path: str) -> Any:
    """The value of a dotted-path field of a filled spec; train_f/train_g fall back to training."""
    parts = path.split(".")
    value: Any = spec
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            if parts[0] in ("train_f", "train_g") and len(parts) == 2:
                return get_path(spec, f"training.{parts[1]}")
            return None
        value = value[part]
    return value


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted-path field in nested dicts, creating sections as needed."""
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _expand(checker: _Checker, spec: dict[str, Any], raw: dict[str, Any], axes: list[Axis],
            columns: list[str]) -> list[Run]:
    """The runs of one sweep; each run's `varied` has a value for every column (swept here, or
    the value its spec has)."""
    runs: list[Run] = []
    by_spec: dict[str, dict[str, Any]] = {}
    raw_attack = raw.get("attack", {})
    for combo in itertools.product(*[range(len(axis[0][1])) for axis in axes]):
        varied = {path: values[i] for axis, i in zip(axes, combo) for path, values in axis}
        given = {p for p in varied if p.startswith("attack.eps")} | {
            f"attack.{k}" for k in ("eps", "eps_per_coord") if k in raw_attack}
        if {"attack.eps", "attack.eps_per_coord"} <= given:
            checker.add(("attack",), "give either eps or eps_per_coord, not both (directly or through a sweep)")
            return []
        # The run's spec with every default (`effective`) and its data section as written (`data`:
        # which data fields apply, and their defaults, depend on the data kind).
        effective, data = copy.deepcopy(spec), copy.deepcopy(raw.get("data", {}))
        for path, value in varied.items():
            set_path(effective, path, value)
            if path.startswith("data."):
                set_path(data, path.split(".", 1)[1], value)
        problems = data_kind(data.get("kind", spec["data"]["kind"])).problems(data)
        for field_name, sentence in problems:
            swept = f"data.{field_name}" in varied or "data.kind" in varied
            where = ("sweep",) if swept else ("data", field_name)
            checker.add(where, sentence, key=True)
        if problems:
            return []
        config = resolve(effective, data)
        run_id = "r" + stable_hash(to_json(config), 16)
        if run_id in by_spec:
            checker.add(("sweep",) if spec.get("sweep") else ("seeds",), key=True,
                        message=f"two sweep points give the same run: {by_spec[run_id]} and {varied}")
            return []
        by_spec[run_id] = varied
        row = {column: varied[column] if column in varied else get_path(effective, column) for column in columns}
        runs.append(Run(run_id, row, config))
    return runs


def _with_set(spec: dict[str, Any], raw: dict[str, Any], fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A panel's base: the spec (filled and as written) with its `set` fields applied."""
    spec, raw = copy.deepcopy(spec), copy.deepcopy(raw)
    for path, value in fields.items():
        set_path(spec, path, value)
        set_path(raw, path, value)
    return spec, raw


def _expand_panels(checker: _Checker, spec: dict[str, Any], raw: dict[str, Any], panels: list[Panel],
                   columns: list[str]) -> list[Run]:
    """The union of every panel's runs, each computed once, in first-seen order."""
    runs: dict[str, Run] = {}
    for panel in panels:
        panel_spec, panel_raw = _with_set(spec, raw, panel.set)
        for run in _expand(checker, panel_spec, panel_raw, panel.axes, columns):
            known = runs.setdefault(run.id, run)
            if known is not run:  # fill what the first panel had no value for
                known.varied.update({k: v for k, v in run.varied.items() if known.varied.get(k) is None})
            known.panels.append(panel.name)
            panel.runs.append(run.id)
    return list(runs.values())


def _check_plots(checker: _Checker, spec: dict[str, Any], axes: list[str], registry: Registry) -> None:
    known_metrics = registry.metrics()
    names: set[str] = set()
    for index, plot in enumerate(spec.get("plots", [])):
        where = ("plots", index)
        if plot["name"] in names:
            checker.add(where + ("name",), f"plot name '{plot['name']}' is used twice")
        names.add(plot["name"])
        metrics = [plot["y"]] if isinstance(plot["y"], str) else plot["y"]
        for i, metric in enumerate(metrics):
            for path, message in metric_problems(where + ("y",) + (() if isinstance(plot["y"], str) else (i,)),
                                                 metric, known_metrics):
                checker.add(path, message)
        for role in ("x", "series"):
            if role in plot and plot[role] not in axes:
                known = ", ".join(axes) if axes else "none (the spec sweeps nothing)"
                checker.add(where + (role,), f"'{plot[role]}' is not a swept field; swept: {known}")
        if plot.get("series") and plot.get("series") == plot["x"]:
            checker.add(where + ("series",), "series and x must be different fields")


def _non_finite_numbers(checker: _Checker, value: Any, path: tuple[Any, ...]) -> None:
    """YAML has .nan and .inf, which JSON Schema's numbers accept; no field of a spec wants them."""
    if isinstance(value, float) and not math.isfinite(value):
        checker.add(path, f"{value} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _non_finite_numbers(checker, item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _non_finite_numbers(checker, item, path + (index,))


def _default_registry() -> Registry:
    from pl_dsl.stages import REGISTRY

    return REGISTRY


def check_text(text: str, file: str, registry: Registry | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """Check a spec given as text; returns the experiment (when valid) and every error found.

    registry: the stages whose metrics plots may name (default: pl-dsl's own).
    """
    registry = registry or _default_registry()
    try:
        doc = load_located(text)
    except YamlDocumentError as exc:
        return None, [SpecError(file, exc.mark.line, exc.mark.col, "", exc.message)]
    checker = _Checker(file, doc)
    if not isinstance(doc.data, dict):
        checker.add((), "an experiment spec must be a mapping of fields (name, data, network, ...)")
        return None, checker.errors
    _schema_errors(checker, doc.data, load_schema())
    _non_finite_numbers(checker, doc.data, ())
    # Sections the schema already rejected are not checked further; the others still are,
    # so one pass reports every independent mistake.
    broken = {error.field.split(".")[0].split("[")[0] for error in checker.errors}
    spec = fill_defaults(doc.data)
    sweeping = not broken & {"sweep", "seeds", "panels"}
    axes = _sweep_axes(checker, spec) if sweeping and not spec["panels"] else []
    panels = _panels(checker, spec) if sweeping and spec["panels"] else []
    if "plots" not in broken and sweeping:
        _check_plots(checker, spec, swept_paths(spec), registry)
    if sweeping and not broken & {"figures", "claims"}:
        for path, message in check_analysis(spec, panels, swept_paths(spec), registry):
            checker.add(path, message)
    if not sweeping or not _run_count_fits(checker, spec, axes, panels):
        return None, _sorted(checker.errors)
    # Expanding the runs finds the rest (eps given twice, fields of another data kind, duplicate
    # runs). It runs even after errors, so every error comes at once; values the schema already
    # rejected may then stop it, which adds nothing to what is reported.
    earlier = bool(checker.errors)
    try:
        runs = _runs(checker, spec, doc.data, axes, panels, registry)
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
    if checker.errors:
        return None, _sorted(checker.errors)
    experiment.warnings = _sorted(checker.warnings + _missing_data(checker, experiment.runs))
    return experiment, []


def _sorted(errors: list[SpecError]) -> list[SpecError]:
    return sorted(dict.fromkeys(errors), key=lambda e: (e.line, e.col))


def _runs(checker: _Checker, spec: dict[str, Any], raw: dict[str, Any], axes: list[Axis], panels: list[Panel],
          registry: Registry) -> list[Run]:
    """Every run of the spec, with the stages its plots, figures and claims ask for switched on."""
    from pl_dsl.report.figures import FIGURE_KINDS

    asked = [m for item in [*spec["plots"], *spec["figures"]]
             for m in ([item["y"]] if isinstance(item.get("y"), str) else item.get("y", []))]
    asked += [claim[key] for claim in spec["claims"] for key in ("metric", "over") if key in claim]
    asked += [m for figure in spec["figures"] for m in FIGURE_KINDS[figure.get("kind", "curves")].needs_metrics]
    for metric in asked:
        switch = registry.stage_of_metric(metric).switch
        if switch:  # asking for a stage's metric is asking for the stage
            set_path(spec, switch, True)
    columns = swept_paths(spec)
    return (_expand_panels(checker, spec, raw, panels, columns) if panels
            else _expand(checker, spec, raw, axes, columns))


def _max_runs(spec: dict[str, Any]) -> int | None:
    """The spec's max_runs when it is a valid one (an invalid one is a schema error already)."""
    limit = spec.get("max_runs")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1 else None


def _run_count_fits(checker: _Checker, spec: dict[str, Any], axes: list[Axis], panels: list[Panel]) -> bool:
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


def _memory_bounds(checker: _Checker, runs: list[Run], registry: Registry) -> None:
    """The largest unit's estimated memory (the stages' declared `memory`): an error beyond any
    machine, a warning beyond this one."""
    peak: tuple[float, str, Run] | None = None
    for run in runs:
        for stage in registry:
            if stage.enabled(run.config):
                estimate = float(stage.memory(stage.select(run.config)))
                if peak is None or estimate > peak[0]:
                    peak = (estimate, stage.name, run)
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
        mark = checker.doc.locate(anchor) if checker.doc else Mark(1, 1)
        checker.warnings.append(SpecError(checker.file, mark.line, mark.col, format_path(anchor),
                                          f"{text}, more than this machine's {available / 2**30:.1f} GiB; "
                                          "run it on a larger machine or a cluster", level="warning"))


def _machine_memory() -> float:
    """This machine's physical memory in bytes (0 where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0


def _missing_data(checker: _Checker, runs: list[Run]) -> list[SpecError]:
    """Warnings for real data sets whose files cannot be found (the runs would fail)."""
    from pl_dsl.science.datasets import REAL_DATASETS, DataNotFound, locate

    warnings: list[SpecError] = []
    for kind, root in dict.fromkeys((r.config.data.kind, r.config.data.root) for r in runs):
        if kind not in REAL_DATASETS:
            continue
        try:
            locate(kind, root)
        except DataNotFound as exc:
            mark = checker.doc.locate(("data", "kind")) if checker.doc else Mark(1, 1)
            warnings.append(SpecError(checker.file, mark.line, mark.col, "data.kind", str(exc), level="warning",
                                      stops_runs=True))
    return warnings


def check_file(path: str | Path, registry: Registry | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """Check one spec file; a missing or unreadable file is an error like any other."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [SpecError(file, 1, 1, "", f"cannot read the file: {reason}")]
    return check_text(text, file, registry)


def load_experiment(path: str | Path) -> Experiment:
    """Load a spec that must be valid; raises SpecInvalid with every error otherwise."""
    experiment, errors = check_file(path)
    if errors or experiment is None:
        raise SpecInvalid(errors)
    return experiment
