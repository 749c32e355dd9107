"""Sections: the top-level parts of a spec that describe a run (data, network, training, attack,
theory, ...), each declared once with its type, its JSON-schema fragment and its resolution.

The core sections (the data set, the network, the scenario, the seed, the device) are declared
here; every other section is brought by the stage that reads it (`Stage.sections`). The run
config, the experiment schema (`pl-dsl schema`) and the checks of data-set fields are all
assembled from these declarations, so a stage with parameters of its own touches no file but
its own.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, make_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pl_dsl.hashing import Encoded, encoded
from pl_dsl.spec.config import DataConfig, NetworkConfig, RunConfig, convert, field_hints, resolve_data, to_json

SPEC_DIR = Path(__file__).resolve().parent
LANGUAGE_FILE = SPEC_DIR / "language.schema.json"  # everything of a spec but its sections


@dataclass(frozen=True)
class Resolution:
    """What a section's resolution sees: the spec with defaults filled and sweep values set
    (`spec`), the same as written, without defaults (`raw`), and the sections resolved before it
    (`done`, as plain JSON)."""

    spec: Mapping[str, Any]
    raw: Mapping[str, Any]
    done: Mapping[str, Any]


@cache
def _fragments(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@dataclass(frozen=True)
class Section:
    """One top-level part of a spec.

    `schema_file` holds its JSON schema under `properties.<name>` (description, default, fields)
    and any `$defs` it refers to. `config` is the type of its resolved value (a frozen dataclass,
    or int / str); `resolve` turns the spec into that value as plain JSON (default: the filled
    spec's value). `data_fields` are paths inside it ('' for itself) that hold a data set: they get
    the data-kind resolution and the missing-file check. `in_run`: whether the run config has a
    field of this name (`training` only feeds train_f and train_g). `columns`: resolved values worth
    a column of the results table that no spec states directly (the absolute eps). `problems`:
    what a schema cannot say about the section as written, as (field, sentence) pairs."""

    name: str
    config: Any
    schema_file: str
    resolve: Callable[[Resolution], Any] | None = None
    data_fields: tuple[str, ...] = ()
    in_run: bool = True
    columns: Callable[[Any], dict[str, Any]] | None = None
    problems: Callable[[Any], list[tuple[str, str]]] | None = None

    @property
    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = _fragments(self.schema_file)["properties"][self.name]
        return found

    @property
    def defs(self) -> dict[str, Any]:
        found: dict[str, Any] = _fragments(self.schema_file).get("$defs", {})
        return found

    def value(self, context: Resolution) -> Any:
        """This section's resolved value as plain JSON, data-set fields resolved by their kind."""
        value = self.resolve(context) if self.resolve is not None else context.spec[self.name]
        for path in self.data_fields:
            value = _replace(value, path, to_json(resolve_data(_at(context.raw.get(self.name, {}), path) or {})))
        return value


def _at(value: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        value = value.get(part, {}) if isinstance(value, Mapping) else {}
    return value


def _replace(value: Any, path: str, new: Any) -> Any:
    parts = [p for p in path.split(".") if p]
    if not parts:
        return new
    copy = dict(value)
    copy[parts[0]] = _replace(copy.get(parts[0], {}), ".".join(parts[1:]), new)
    return copy


def schema_beside(module_file: str) -> str:
    """The schema file of a module's sections: `<module>.schema.json` beside it."""
    return str(Path(module_file).with_suffix(".schema.json"))


CORE_FILE = str(SPEC_DIR / "core.schema.json")
# The sections every run has, read by the engine itself: the data set, the network, which
# scenario g is trained in, the seed, the device and whose random streams the run draws from.
CORE_SECTIONS = (
    Section("data", DataConfig, CORE_FILE, data_fields=("",)),
    Section("network", NetworkConfig, CORE_FILE),
    Section("scenario", str, CORE_FILE),
    Section("seed", int, CORE_FILE),
    Section("device", str, CORE_FILE),
    Section("rng", str, CORE_FILE),
)


def core_defaults(name: str) -> dict[str, Any]:
    """The schema defaults of the fields of a core section (e.g. 'data')."""
    from pl_dsl.spec.schema import resolve_ref

    section = next(s for s in CORE_SECTIONS if s.name == name)
    return {key: prop["default"] for key, prop in ((k, resolve_ref(v, {})) for k, v in
                                                    section.schema.get("properties", {}).items()) if "default" in prop}


@cache
def run_config_class(sections: tuple[Section, ...]) -> type[RunConfig]:
    """The run config of these sections: RunConfig (the core) plus a field per other section."""
    core = {s.name for s in CORE_SECTIONS}
    extra = [(s.name, s.config, field()) for s in sections if s.in_run and s.name not in core]
    return make_dataclass("RunConfig", extra, bases=(RunConfig,), frozen=True)


def resolve_run(sections: tuple[Section, ...], spec: Mapping[str, Any], raw: Mapping[str, Any]) -> RunConfig:
    """The run of a spec whose defaults are filled and whose sweep values are set (`raw`: the same
    as written, sweep values set): each section resolved in order, then typed."""
    return SweepResolver(sections).resolve(spec, raw, {})[0]


class _Reads(Mapping[str, Any]):
    """A mapping that records which of its top-level keys were read (all of them, when iterated)."""

    def __init__(self, data: Mapping[str, Any], reads: set[str]) -> None:
        self._data, self._reads = data, reads

    def __getitem__(self, key: str) -> Any:
        self._reads.add(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        self._reads.update(self._data)
        return iter(self._data)

    def __len__(self) -> int:
        self._reads.update(self._data)
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        self._reads.add(str(key))
        return key in self._data


@dataclass(frozen=True)
class ResolvedSection:
    """One section of a run, resolved: as its resolution returned it (`resolved`, what later
    sections read), typed as the run config holds it (`value`) and that as plain JSON (`plain`)."""

    resolved: Any
    value: Any
    plain: Any
    encoded: Encoded  # `plain` encoded for stable_hash (a run id hashes its sections)


class SweepResolver:
    """Resolves the runs of one sweep, each section once per distinct value of the swept fields it
    reads: a section that reads no swept field is resolved once for the whole sweep.

    Which top-level keys a section's resolution reads (of the spec, the spec as written and the
    sections resolved before it) is recorded; its result is reused for every run whose points
    (see spec.sweeps.SweepPoints) under those keys, and under what the sections it read depend
    on, are the same. That is what resolving the run on its own gives, since a resolution is a
    function of what it reads."""

    def __init__(self, sections: tuple[Section, ...]) -> None:
        self.sections = sections
        self.config_class = run_config_class(sections)
        self._hints = dict(field_hints(self.config_class))
        self._in_run = [s.name for s in sections if s.in_run]
        # per section: [(the swept top-level keys it depended on, their points' getter,
        # {their points: the section resolved})]
        self._memo: dict[str, list[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Any], dict[Any, ResolvedSection]]]] \
            = {s.name: [] for s in sections}

    def resolve(self, spec: Mapping[str, Any], raw: Mapping[str, Any],
                points: Mapping[str, Any]) -> tuple[RunConfig, dict[str, ResolvedSection]]:
        """The run of a spec and the same as written whose swept top-level keys are at `points`
        (each key's point: which distinct values of its swept fields it holds)."""
        done: dict[str, Any] = {}
        resolved: dict[str, ResolvedSection] = {}
        depends: dict[str, tuple[str, ...]] = {}
        for section in self.sections:
            memo = self._memo[section.name]
            hit: ResolvedSection | None = None
            keys: tuple[str, ...] = ()
            for known_keys, points_of, values in memo:
                hit = values.get(points_of(points))
                if hit is not None:
                    keys = known_keys
                    break
            if hit is None:
                read: set[str] = set()
                done_read: set[str] = set()
                value = section.value(Resolution(_Reads(spec, read), _Reads(raw, read), _Reads(done, done_read)))
                keys = tuple(sorted({key for key in read if key in points}
                                    | {key for name in done_read for key in depends[name]}))
                typed = convert(self._hints[section.name], value) if section.in_run else value
                plain = to_json(typed)
                hit = ResolvedSection(value, typed, plain, encoded(plain))
                entry = next((entry for entry in memo if entry[0] == keys), None)
                if entry is None:
                    entry = (keys, _points_getter(keys), {})
                    memo.append(entry)
                entry[2][entry[1](points)] = hit
            depends[section.name] = keys
            done[section.name] = hit.resolved
            resolved[section.name] = hit
        config = self.config_class(**{name: resolved[name].value for name in self._in_run})
        return config, resolved


def _points_getter(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """What a memo of SweepResolver is keyed by: the points under `keys`."""
    return operator.itemgetter(*keys) if keys else lambda points: ()


def build_schema(sections: Iterable[Section]) -> dict[str, Any]:
    """The experiment schema: the language (name, seeds, sweep, panels, figures, claims, ...) with
    each section's property inserted after `description`, and every section's $defs."""
    language = _fragments(str(LANGUAGE_FILE))
    sections = list(sections)
    properties: dict[str, Any] = {}
    for name, prop in language["properties"].items():
        properties[name] = prop
        if name == "description":
            properties.update({s.name: s.schema for s in sections})
    defs = dict(language.get("$defs", {}))
    for section in sections:
        defs.update(section.defs)
    return {**language, "properties": properties, "$defs": defs}


def data_set_paths(sections: Iterable[Section]) -> list[str]:
    """Dotted paths of every data-set field of a run ('data' for the core one)."""
    return [".".join(filter(None, (s.name, path))) for s in sections for path in s.data_fields]
