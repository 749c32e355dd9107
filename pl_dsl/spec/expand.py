"""From a checked spec to its runs: every point of its sweep (or the union of its panels), each
resolved section by section into a typed run config with an id."""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pl_dsl.hashing import stable_hash
from pl_dsl.spec.config import RunConfig, kept_fields, to_json
from pl_dsl.spec.messages import Checker, SpecError
from pl_dsl.spec.sections import Section, SweepResolver
from pl_dsl.spec.sweeps import Axis, Panel, SweepPoints, get_path, hashable, set_path, swept_paths

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry


@dataclass(slots=True)
class Run:
    """One point of an experiment's sweep: its id, the values varied there, its resolved
    configuration (typed, and as plain JSON in `spec`), and the values worth a column of their own
    that no spec states directly (`resolved`, e.g. the absolute eps)."""

    id: str
    varied: dict[str, Any]
    config: RunConfig
    panels: list[str] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] | None = None  # each section as plain JSON, shared with other runs

    @property
    def spec(self) -> dict[str, Any]:
        if self.sections is None:
            data: dict[str, Any] = to_json(self.config)
            return data
        return {name: self.sections[name] for name in kept_fields(self.config)}


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


def _join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def _section_problems(checker: Checker, section: Section, value: Any, varied: dict[str, Any]) -> bool:
    """Report what a section as written (sweep values set) declares wrong, and the fields of
    its data sets that do not fit their kind; True if anything was found."""
    from pl_dsl.science.datasets import DATA_KINDS, data_kind

    problems: list[tuple[str, str]] = []  # (the field's full path, sentence)
    if section.problems is not None:
        problems += [(_join(section.name, name), sentence) for name, sentence in section.problems(value)]
    for path in section.data_fields:
        data = (get_path(value, path) if path else value) or {}
        if "kind" not in data:  # every data set says what it is (the core schema requires it too)
            if path or "kind" not in section.schema.get("required", []):
                problems.append((_join(section.name, path, "kind"),
                                 f"missing required field 'kind': one of {', '.join(DATA_KINDS)}"))
            continue
        problems += [(_join(section.name, path, name), sentence)
                     for name, sentence in data_kind(data["kind"]).problems(data)]
    for full, sentence in problems:
        swept = full in varied or f"{full.rsplit('.', 1)[0]}.kind" in varied
        checker.add(("sweep",) if swept else tuple(full.split(".")), sentence, key="." in full)
    return bool(problems)


def expand(checker: Checker, spec: dict[str, Any], raw: dict[str, Any], axes: list[Axis], columns: list[str],
           registry: Registry) -> list[Run]:
    """The runs of one sweep; each run's `varied` has a value for every column (swept here, or
    the value its spec has). Each section is built, checked and resolved once per distinct value
    of the swept fields it reads, not once per run."""
    runs: list[Run] = []
    by_spec: dict[str, dict[str, Any]] = {}
    sections = registry.sections
    swept = [path for axis in axes for path, _ in axis]
    # The run's spec with every default (`effective`) and as written (`written`): which data
    # fields apply, and their defaults, depend on the data kind.
    effective_at, written_at = SweepPoints(spec, swept), SweepPoints(raw, swept)
    resolver = SweepResolver(sections)
    checked = [s for s in sections if s.problems is not None or s.data_fields]
    clean: set[tuple[str, Any]] = set()  # (section, point) found without problems as written
    columns_of = {s.name: s.columns for s in sections if s.columns is not None}
    # Per axis, per value: the fields it sets, and the same made hashable (a sweep point's part).
    choices = [[({path: values[i] for path, values in axis}, {path: hashable(values[i]) for path, values in axis})
                for i in range(len(axis[0][1]))] for axis in axes]
    for combo in itertools.product(*choices):
        varied: dict[str, Any] = {}
        hashed: dict[str, Any] = {}
        for fields, hashable_fields in combo:
            varied.update(fields)
            hashed.update(hashable_fields)
        points = effective_at.points(hashed)
        effective, written = effective_at.at(varied, points), written_at.at(varied, points)
        for section in checked:
            point = (section.name, points.get(section.name))
            if point not in clean:
                if _section_problems(checker, section, written.get(section.name, {}), varied):
                    return []
                clean.add(point)
        config, resolved_sections = resolver.resolve(effective, written, points)
        plain = {name: section.plain for name, section in resolved_sections.items()}
        read = registry.read_sections(config)  # a switched-off stage's section adds no column
        encoded = {name: section.encoded for name, section in resolved_sections.items()}
        run_id = "r" + stable_hash(registry.run_identity(config, encoded, read), 16)
        if run_id in by_spec:
            checker.add(("sweep",) if spec.get("sweep") else ("seeds",), key=True,
                        message=f"two sweep points give the same run: {by_spec[run_id]} and {varied}")
            return []
        by_spec[run_id] = varied
        row = {column: varied[column] if column in varied else get_path(effective, column) for column in columns}
        resolved = {k: v for name, columns in columns_of.items() if name in read
                    for k, v in columns(getattr(config, name)).items()}
        runs.append(Run(run_id, row, config, resolved=resolved, sections=plain))
    return runs


def _with_set(spec: dict[str, Any], raw: dict[str, Any], fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A panel's base: the spec (filled and as written) with its `set` fields applied."""
    spec, raw = copy.deepcopy(spec), copy.deepcopy(raw)
    for path, value in fields.items():
        set_path(spec, path, value)
        set_path(raw, path, value)
    return spec, raw


def expand_panels(checker: Checker, spec: dict[str, Any], raw: dict[str, Any], panels: list[Panel],
                  columns: list[str], registry: Registry) -> list[Run]:
    """The union of every panel's runs, each computed once, in first-seen order."""
    runs: dict[str, Run] = {}
    for panel in panels:
        panel_spec, panel_raw = _with_set(spec, raw, panel.set)
        for run in expand(checker, panel_spec, panel_raw, panel.axes, columns, registry):
            known = runs.setdefault(run.id, run)
            if known is not run:  # fill what the first panel had no value for
                known.varied.update({k: v for k, v in run.varied.items() if known.varied.get(k) is None})
            known.panels.append(panel.name)
            panel.runs.append(run.id)
    return list(runs.values())


def expand_runs(checker: Checker, spec: dict[str, Any], raw: dict[str, Any], axes: list[Axis], panels: list[Panel],
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
    return (expand_panels(checker, spec, raw, panels, columns, registry) if panels
            else expand(checker, spec, raw, axes, columns, registry))
