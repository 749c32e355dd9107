"""Sweeps and panels: the axes a spec varies, each checked against the field it names, and
dotted paths into specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pl_dsl.spec.messages import Checker, SpecError, format_path, schema_errors
from pl_dsl.spec.schema import field_paths, subschema
from pl_dsl.suggest import did_you_mean

# Top-level fields that describe the experiment rather than a run; they cannot be swept.
NOT_SWEEPABLE = ("name", "description", "sweep", "plots", "seeds", "panels", "figures", "claims", "max_runs", "extends")


Axis = list[tuple[str, list[Any]]]  # (path, values) pairs that advance together


class AxesBuilder:
    """Builds the axes of one sweep (the spec's, or one panel's), reporting bad paths and values."""

    def __init__(self, checker: Checker) -> None:
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
        sub = subschema(path, self.checker.schema)
        if sub is None:
            hint = did_you_mean(path, field_paths(self.checker.schema))
            self.checker.add(where, f"'{path}' is not a field of the spec{hint}", key=True)
            return None
        if sub.get("type") == "object":
            self.checker.add(where, f"'{path}' is a section; {role.replace('swept', 'sweep')} one of its fields", key=True)
            return None
        return sub

    def value_errors(self, path: str, sub: dict[str, Any], value: Any, where: tuple[Any, ...], what: str) -> bool:
        """Check one value against the field's schema; True if it fits."""
        checker = self.checker
        before = len(checker.errors)
        schema_errors(checker, value, {**sub, "$defs": checker.schema["$defs"]}, mark=checker.mark(where))
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


def _common_axes(builder: AxesBuilder, spec: dict[str, Any],
                 replaced: dict[str, tuple[list[Any], tuple[Any, ...]]]) -> None:
    """The spec's sweep.grid (with `replaced` paths' values and places swapped in), its zip groups."""
    sweep = spec.get("sweep", {})
    for path, values in sweep.get("grid", {}).items():
        values, where = replaced.pop(path, (values, ("sweep", "grid", path)))
        builder.grid(path, values, where)
    for path, (values, where) in replaced.items():  # a panel's own extra axes
        builder.grid(path, values, where)
    written = sweep.get("zip", [])
    for index, group in enumerate(zip_groups(sweep)):
        builder.zip(group, ("sweep", "zip") if isinstance(written, dict) else ("sweep", "zip", index))


def zip_groups(sweep: dict[str, Any]) -> list[dict[str, list[Any]]]:
    """sweep.zip as groups: one mapping (path -> values, advancing together) is one group, the
    same form as a panel's `vary.zip`; a list of mappings is several groups (one axis each)."""
    groups = sweep.get("zip", [])
    return [groups] if isinstance(groups, dict) else list(groups)


def sweep_axes(checker: Checker, spec: dict[str, Any]) -> list[Axis]:
    """Axes of the sweep in order: each grid path, each zip group, then the seeds."""
    builder = AxesBuilder(checker)
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


def panels_of(checker: Checker, spec: dict[str, Any]) -> list[Panel]:
    """Every panel with its axes: its factor first, then the common axes (its own grid paths
    replace or extend sweep.grid), then its seeds or the spec's."""
    panels: list[Panel] = []
    names: dict[str, int] = {}
    for index, panel in enumerate(spec.get("panels", [])):
        where = ("panels", index)
        if panel["name"] in names:
            checker.add(where + ("name",), f"panel name '{panel['name']}' is used twice (also panels[{names[panel['name']]}])")
        names.setdefault(panel["name"], index)
        builder = AxesBuilder(checker)
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
    paths += list(sweep.get("grid", {})) + [p for group in zip_groups(sweep) for p in group]
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


def with_paths(target: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of nested dicts with dotted-path fields set; only the dicts along those paths are
    copied (a run's spec shares every untouched section with the spec it comes from)."""
    result = dict(target)
    copies = {id(result)}
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = result
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
                copies.add(id(child))
            elif id(child) not in copies:
                child = node[part] = dict(child)
                copies.add(id(child))
            node = child
        node[leaf] = value
    return result


def hashable(value: Any) -> Any:
    """A sweep value (JSON) as a dict key: lists and dicts become tuples."""
    if isinstance(value, dict):
        return tuple((k, hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    return value


class SweepPoints:
    """A base spec at the points of a sweep: each swept top-level section is built once per
    distinct value of the swept fields under it, and shared by every point with those values (so
    checks and resolutions of a section can be kept per section, not per run)."""

    def __init__(self, base: dict[str, Any], swept: list[str]) -> None:
        self.base = base
        self._under: dict[str, list[str]] = {}
        for path in swept:
            self._under.setdefault(path.split(".")[0], []).append(path)
        self._built: dict[tuple[str, Any], Any] = {}

    def points(self, hashed: dict[str, Any]) -> dict[str, Any]:
        """Each swept top-level key's point: the values of the swept fields under it, given
        hashable (see `hashable`); equal points hold equal sections."""
        return {key: tuple([hashed[path] for path in paths]) for key, paths in self._under.items()}

    def at(self, varied: dict[str, Any], points: dict[str, Any]) -> dict[str, Any]:
        """The base spec with the values of `varied` set (`points`: theirs, see `points`)."""
        result = dict(self.base)
        for key, paths in self._under.items():
            section = self._built.get((key, points[key]))
            if section is None:
                section = self._built[(key, points[key])] = with_paths(self.base, {p: varied[p] for p in paths})[key]
            result[key] = section
        return result


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted-path field in nested dicts, creating sections as needed."""
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


