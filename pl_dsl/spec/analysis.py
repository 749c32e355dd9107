"""What a schema cannot say about plots, figures and claims: the panels, metrics and axes they
name exist, every axis that varies within a panel is reduced (never silently averaged), a log
axis has positive values only, and a metric that is chance by construction is pointed out."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pl_dsl.report.claims import CLAIM_KINDS, claim_panels, same_value
from pl_dsl.report.figures import FIGURE_KINDS
from pl_dsl.spec.sweeps import zip_groups
from pl_dsl.suggest import did_you_mean
from pl_dsl.suggest import known as known_names

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry
    from pl_dsl.spec.expand import Experiment
    from pl_dsl.spec.sweeps import Panel

Problem = tuple[tuple[Any, ...], str]


def metric_problems(where: tuple[Any, ...], metric: str, known: dict[str, str]) -> Iterator[Problem]:
    """An unknown metric, with every known one (plots, figures and claims alike)."""
    if metric not in known:
        yield where, f"unknown metric '{metric}'{did_you_mean(metric, known)}; known: {known_names(known)}"


def _reduce_problems(where: tuple[Any, ...], reduce: str | dict[str, str], select: str, axes: list[str],
                     panels: list[Panel], x_of: dict[str, str], known: dict[str, str]) -> Iterator[Problem]:
    """A per-axis reduction names swept axes, has at most one band, and covers every axis
    that varies within each panel it is applied to (other than the panel's factor)."""
    if select != "per_metric":
        yield from metric_problems(where + ("select",), select, known)
    if isinstance(reduce, str):
        return
    for axis in reduce:
        if axis not in axes:
            yield where + ("reduce", axis), f"'{axis}' is not a swept axis; swept: {', '.join(axes) or 'none'}"
    bands = [axis for axis, op in reduce.items() if op == "band"]
    if len(bands) > 1:
        yield where + ("reduce",), f"at most one axis can be the band, not {', '.join(bands)}"
    for panel in panels:
        varying = [path for axis in panel.axes for path, values in axis if len(values) > 1 or path == "seed"]
        factor = set(panel.factor)
        missing = [path for path in varying if path not in factor and path not in reduce and path != x_of.get(panel.name)]
        if missing:
            yield where + ("reduce",), (f"panel '{panel.name}' also varies {', '.join(missing)}: say how to reduce "
                                        f"{'it' if len(missing) == 1 else 'them'} (max, min, mean or band)")


def _plot_problems(spec: dict[str, Any], axes: list[str], known: dict[str, str]) -> list[Problem]:
    """Names used twice, unknown metrics, and x or series fields the spec does not sweep."""
    problems: list[Problem] = []
    names: set[str] = set()
    for index, plot in enumerate(spec.get("plots", [])):
        where = ("plots", index)
        if plot["name"] in names:
            problems.append((where + ("name",), f"plot name '{plot['name']}' is used twice"))
        names.add(plot["name"])
        metrics = [plot["y"]] if isinstance(plot["y"], str) else plot["y"]
        for i, metric in enumerate(metrics):
            problems += metric_problems(where + ("y",) + (() if isinstance(plot["y"], str) else (i,)), metric, known)
        for role in ("x", "series"):
            if role in plot and plot[role] not in axes:
                swept = ", ".join(axes) if axes else "none (the spec sweeps nothing)"
                problems.append((where + (role,), f"'{plot[role]}' is not a swept field; swept: {swept}"))
        if plot.get("series") and plot.get("series") == plot["x"]:
            problems.append((where + ("series",), "series and x must be different fields"))
    return problems


def _log_axis_problem(where: tuple[Any, ...], scale: str, values: list[Any], what: str) -> list[Problem]:
    """A log axis cannot show 0 or negative values: say which, and that symlog can."""
    bad = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0]
    if scale != "log" or not bad:
        return []
    return [(where, f"a log axis cannot show {', '.join(map(str, bad))} ({what}); use x_scale: symlog "
                    "(linear near 0) or leave those values out")]


def _swept_values(spec: dict[str, Any], panels: list[Panel], path: str) -> list[Any]:
    """Every value a field path takes: in the sweep, in `seeds`, and in each panel."""
    sweep = spec.get("sweep", {})
    values = list(sweep.get("grid", {}).get(path, []))
    for group in zip_groups(sweep):
        values += group.get(path, [])
    if path == "seed":
        values += spec.get("seeds", [])
    return values + [v for panel in panels for axis in panel.axes for field, vs in axis if field == path for v in vs]


def check_analysis(spec: dict[str, Any], panels: list[Panel], axes: list[str], registry: Registry,
                   broken: set[str] | None = None) -> list[Problem]:
    """Every problem of the spec's plots, figures and claims, each with its path (sections in
    `broken` already failed the schema and are not checked further)."""
    broken = broken or set()
    known = registry.metrics()
    by_name = {panel.name: panel for panel in panels}
    x_of = {panel.name: panel.x for panel in panels}
    problems: list[Problem] = []
    if "plots" not in broken:
        problems += _plot_problems(spec, axes, known)
        for index, plot in enumerate(spec.get("plots", [])):
            problems += _log_axis_problem(("plots", index, "x_scale"), plot.get("x_scale", "linear"),
                                          _swept_values(spec, panels, plot["x"]), f"values of {plot['x']}")
    if broken & {"figures", "claims"}:
        return problems
    names: set[str] = set()
    for index, figure in enumerate(spec.get("figures", [])):
        where = ("figures", index)
        if figure["name"] in names:
            problems.append((where + ("name",), f"figure name '{figure['name']}' is used twice"))
        names.add(figure["name"])
        if not panels:
            problems.append((where + ("panels",), "figures draw panels: declare `panels` (one-factor sweeps) first"))
            continue
        figure_kind = FIGURE_KINDS.get(figure.get("kind", "curves"))
        if figure_kind is None:
            continue  # the schema's enum has reported it
        if figure_kind.needs_y and "y" not in figure:
            problems.append((where, f"a figure of kind '{figure.get('kind', 'curves')}' needs 'y' (the metrics to plot)"))
        metrics = [figure["y"]] if isinstance(figure.get("y"), str) else figure.get("y", [])
        for i, metric in enumerate(metrics):
            problems += metric_problems(where + ("y",) + (() if isinstance(figure["y"], str) else (i,)), metric, known)
        used = []
        for i, entry in enumerate(figure["panels"]):
            name = entry if isinstance(entry, str) else entry["panel"]
            if name not in by_name:
                problems.append((where + ("panels", i), f"no panel '{name}'{did_you_mean(name, by_name)}; "
                                                        f"panels: {known_names(by_name)}"))
                continue
            used.append(by_name[name])
            if isinstance(entry, dict):
                panel = by_name[name]
                values = [v for axis in panel.axes for path, vs in axis if path == panel.x for v in vs]
                problems += _log_axis_problem(where + ("panels", i, "x_scale"), entry.get("x_scale", "linear"), values,
                                              f"values of {panel.x} in panel '{name}'")
            runs = math.prod(len(axis[0][1]) for axis in by_name[name].axes)
            if figure_kind.one_run_per_panel and runs != 1:
                problems.append((where + ("panels", i), f"panel '{name}' has {runs} runs; a {figure['kind']} figure "
                                                        "draws one run per panel (one value, one seed, no grid)"))
        if "layout" in figure and figure["layout"][0] * figure["layout"][1] < len(figure["panels"]):
            rows, cols = figure["layout"]
            problems.append((where + ("layout",), f"{rows} x {cols} panels cannot hold {len(figure['panels'])}"))
        problems += _reduce_problems(where, figure.get("reduce", "max"), figure.get("select", "per_metric"),
                                     axes, used, x_of, known)
    for index, claim in enumerate(spec.get("claims", [])):
        where = ("claims", index)
        kind = CLAIM_KINDS.get(claim["kind"])
        if kind is None:
            continue  # the schema's enum has reported it
        for needed in kind.needs:
            if needed not in claim:
                problems.append((where, f"a claim of kind '{claim['kind']}' needs '{needed}'"))
        problems += metric_problems(where + ("metric",), claim["metric"], known)
        if "over" in claim:
            problems += metric_problems(where + ("over",), claim["over"], known)
        named = claim_panels(claim)
        chosen = [by_name[name] for name in named if name in by_name]
        for index, name in enumerate(named):
            if name not in by_name:
                at = ("panel",) if isinstance(claim["panel"], str) else ("panel", index)
                problems.append((where + at, f"no panel '{name}'{did_you_mean(name, by_name)}; "
                                             f"panels: {known_names(by_name)}"))
        for key in ("at", "from", "to"):
            for panel in chosen if key in claim else []:
                values = [v for axis in panel.axes for path, vs in axis if path == panel.x for v in vs]
                if not any(same_value(claim[key], v) for v in values):
                    problems.append((where + (key,), f"{claim[key]!r} is not a value of {panel.x} in panel "
                                                     f"'{panel.name}' ({', '.join(map(str, values))})"))
        problems += _reduce_problems(where, claim.get("reduce", "max"), claim.get("select", "per_metric"), axes,
                                     chosen, x_of, known)
    return problems


def chance_warnings(spec: dict[str, Any], experiment: Experiment, registry: Registry) -> list[Problem]:
    """Warnings for plots, figures and claims that read a metric chance by construction for some
    of their runs' data (a test accuracy on data whose labels are random, such as gauss)."""
    from pl_dsl.science.datasets import data_kind

    test_metrics = {m for stage in registry for m in stage.test_label_metrics}
    random = sorted({run.config.data.kind for run in experiment.runs if data_kind(run.config.data.kind).random_labels})
    if not random or not test_metrics:
        return []
    found: list[Problem] = []
    for section in ("plots", "figures", "claims"):
        for index, item in enumerate(spec.get(section, [])):
            named = item.get("metric") if section == "claims" else item.get("y", [])
            for metric in [named] if isinstance(named, str) else named or []:
                if metric in test_metrics:
                    found.append(((section, index), f"{metric} is chance by construction on {', '.join(random)} data "
                                                    "(its test labels are drawn at random, apart from anything f or g "
                                                    "can learn); f_train_acc or agreement say more"))
    return found
