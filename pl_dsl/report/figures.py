"""Figures in the paper's layout (a grid of panels, one per varied factor) and single plots,
drawn from a results table with the per-axis reduction of `report.reduce`."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.engine.store import DIVERGED, NONFINITE, atomic_path
from pl_dsl.errors import StageFailure, lookup
from pl_dsl.report.reduce import PER_METRIC, Point, curves, reduction_plan, sort_values
from pl_dsl.report.results import read_table

# The paper's symbols for the fields it varies; other fields are shown by their path.
SYMBOLS: dict[str, str] = {
    "data.dim": "d", "network.width": "m", "network.leaky_slope": "γ", "data.n_train": "N",
    "train_f.steps": "$T_f$", "train_g.steps": "$T_g$", "training.steps": "T", "attack.eps": "ε",
    "attack.eps_per_coord": "ε/√d", "train_f.lr": "$lr_f$", "train_g.lr": "$lr_g$", "training.lr": "lr",
    "training.loss": "loss", "scenario": "scenario", "seed": "seed", "attack.targets": "targets",
    "data.kind": "data", "data.n_test": "test samples",
}
# The paper's names for its curves; other metrics are shown by their name.
METRIC_LABELS: dict[str, str] = {
    "f_train_acc": "Standard (f on D)", "f_test_acc": "f on test points", "g_clean_acc": "Perturbation (g on clean D)",
    "agreement": "Agreement (f, g on test points)", "cos_abs_mean": "Cosine similarity (mean |cos|)",
    "cos_random": "random |cos|",
}
# Marker and line style of the paper's curves (the authors' notebooks); others get circles and solid lines.
METRIC_STYLES: dict[str, tuple[str, str]] = {
    "f_train_acc": ("o", "-"), "g_clean_acc": ("X", "--"), "agreement": ("^", ":"), "cos_abs_mean": ("X", "--"),
}


# Marker and line style of other metrics, in the order a figure lists them, so that curves that
# coincide stay visible beneath one another.
OTHER_STYLES: tuple[tuple[str, str], ...] = (("o", "-"), ("s", "--"), ("D", ":"), ("v", "-."))


def curve_styles(metrics: list[str]) -> dict[str, tuple[str, str]]:
    """Each metric's (marker, line style): the paper's where it has one, else the next of OTHER_STYLES."""
    others = [metric for metric in metrics if metric not in METRIC_STYLES]
    return {metric: METRIC_STYLES.get(metric) or OTHER_STYLES[others.index(metric) % len(OTHER_STYLES)]
            for metric in metrics}


def metrics_label(metrics: list[str]) -> str:
    """The default y label: the metric's name, or the metrics' names without their parentheses."""
    return metric_label(metrics[0]) if len(metrics) == 1 else " / ".join(metric_label(m).split(" (")[0] for m in metrics)


def symbol(path: str) -> str:
    return SYMBOLS.get(path, path)


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def describe_reduction(reduced: dict[str, str], select: str, statistic: str = "mean", band: str | None = None,
                       banded: bool = False) -> str:
    """What was done to a table's rows to draw the curves, in words: only the reductions really
    applied (an axis that never took two values beside one x is not named) and, where a point has
    several values of the band axis, the line's statistic and the band; '' when nothing was."""
    parts = [f"{op} over {symbol(axis)}" for axis, op in reduced.items()]
    if parts and select != PER_METRIC:
        parts[-1] += f" (one point, chosen by {select})"
    elif parts:
        parts[-1] += " (each metric on its own)"
    if band is not None and banded:
        parts.append(f"line: {statistic} over {symbol(band)}, band: min-max")
    return "; ".join(parts)


def _draw_curve(ax: Any, points: list[Point], position: dict[Any, float] | None, label: str, color: str,
                style: str = "-", marker: str = "o", statistic: str = "mean") -> None:
    """A line through each x's statistic (mean or median) with markers and, where there are several
    values per x, their min-max band."""
    xs = [position[p.x] if position is not None else p.x for p in points]
    ax.plot(xs, [p.statistic(statistic) for p in points], marker=marker, markersize=4.5, color=color, linestyle=style,
            label=label, markeredgecolor="white", markeredgewidth=0.5)
    if any(len(p.values) > 1 for p in points):
        ax.fill_between(xs, [p.low for p in points], [p.high for p in points], color=color, alpha=0.18, linewidth=0)


def _x_axis(ax: Any, xs: list[Any], scale: str) -> dict[Any, float] | None:
    """Categorical positions for text values, else the declared scale."""
    if any(isinstance(x, str) for x in xs) or scale == "category":
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        return {x: float(i) for i, x in enumerate(xs)}
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if scale == "log" and xs and min(xs) > 0:
        ax.set_xscale("log")
    elif scale in ("log", "symlog"):  # log with a 0 (eps = 0, T = 0): linear near zero
        positive = [x for x in xs if x > 0]
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    if scale in ("log", "symlog"):  # plain numbers at 1, 2 and 5 of every decade, enough to read a value off
        from matplotlib.ticker import LogLocator, SymmetricalLogLocator

        if ax.get_xscale() == "log":
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=LOG_TICKS))
        else:
            ax.xaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=ax.xaxis.get_transform().linthresh,
                                                             subs=LOG_TICKS))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    return None


# Where a log axis is labelled in each decade.
LOG_TICKS = (1.0, 2.0, 5.0)


def save_figure(fig: Any, png: Path, svg: Path) -> None:
    """Write a figure as PNG and SVG, each atomically."""
    for path in (png, svg):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=130)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def diverged_note(rows: list[dict[str, str]]) -> str:
    """Says how many runs diverged and are therefore missing from a drawing ('' when none)."""
    count = sum(row.get("status") == DIVERGED for row in rows)
    return f"{count} of {len(rows)} runs diverged and are not shown (see results.csv)" if count else ""


def nonfinite_points(rows: list[dict[str, str]], x: str) -> str:
    """The points of a curve that hold runs gone non-finite as the authors' code computes them,
    each with how many of its runs ('' when none): those runs count with their script's scores."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        count = counts.setdefault(row.get(x, ""), [0, 0])
        count[0] += row.get("status") == NONFINITE
        count[1] += 1
    marked = [f"{symbol(x)}={value} ({bad} of {total})" for value, (bad, total) in counts.items() if bad]
    return ", ".join(marked)


def drawing_note(rows: list[dict[str, str]], nonfinite: list[str], width: int = 110) -> str:
    """What a drawing's caption tells besides its title: the runs that diverged (not shown) and
    the points holding runs gone non-finite as the authors' code (shown with their scores)."""
    notes = [diverged_note(rows)]
    if nonfinite:
        notes.append(textwrap.fill("runs non-finite as their code, counted with their script's scores (a NaN "
                                   "output is wrong): " + "; ".join(nonfinite), width))
    return "\n".join(n for n in notes if n)


def draw_curves(figure: dict[str, Any], table: Path, png: Path, svg: Path, runs: Path) -> None:
    """A figure of panels, each the figure's metrics against its panel's factor: figure holds its
    spec plus `panels_info` (panel -> its x field and set fields) and the experiment's `axes`."""
    plt = _pyplot()
    rows = read_table(table)
    entries = [p if isinstance(p, dict) else {"panel": p} for p in figure["panels"]]
    n_rows, n_cols = figure.get("layout") or (math.ceil(len(entries) / 2), min(2, len(entries)))
    metrics = [figure["y"]] if isinstance(figure["y"], str) else list(figure["y"])
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(4.3 * n_cols, 3.1 * n_rows + 0.9), squeeze=False,
                             layout="constrained")
    colors = {metric: f"C{i}" for i, metric in enumerate(metrics)}
    styles = curve_styles(metrics)
    reduced: dict[str, str] = {}  # over every panel, what was really reduced
    nonfinite: list[str] = []  # per panel, its points with runs non-finite as the authors' code
    band, banded = None, False
    for index, ax in enumerate(grid.flat):
        if index >= len(entries):
            ax.set_axis_off()
            continue
        entry = entries[index]
        info = figure["panels_info"][entry["panel"]]
        members = [row for row in rows if entry["panel"] in row.get("panels", "").split(";")]
        plan = reduction_plan(figure.get("reduce", "max"), figure["axes"], info["x"])
        found = curves(members, info["x"], metrics, plan, figure.get("select", PER_METRIC))
        reduced.update(found.reduced)
        band, banded = band or found.band, banded or found.banded
        xs = sort_values(p.x for points in found.values() for p in points)
        position = _x_axis(ax, xs, entry.get("x_scale", "linear"))
        for metric in metrics:
            if (metric, None) in found:
                marker, style = styles[metric]
                _draw_curve(ax, found[(metric, None)], position, metric_label(metric), colors[metric], style, marker,
                            figure.get("statistic", "mean"))
        marked = nonfinite_points(members, info["x"])
        if marked:
            nonfinite.append(f"{entry.get('title') or entry['panel']}: {marked}")
        extras = ", ".join(f"{symbol(k)} = {v}" for k, v in info["set"].items())
        xlabel = entry.get("xlabel") or symbol(info["x"])
        title = entry.get("title") or (f"varying {xlabel}" + (f" ({extras})" if extras else ""))
        ax.set_title(textwrap.fill(title, 50), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(figure.get("ylabel") or metrics_label(metrics), fontsize=9)
        if figure.get("ylim"):
            ax.set_ylim(*figure["ylim"])
        ax.grid(alpha=0.3)
    handles, labels = next((pair for pair in (ax.get_legend_handles_labels() for ax in grid.flat) if pair[0]), ([], []))
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels) if n_cols > 1 else 1, fontsize=9,
               title=describe_reduction(reduced, figure.get("select", PER_METRIC), figure.get("statistic", "mean"),
                                        band, banded) or None, title_fontsize=8)
    note = drawing_note(rows, nonfinite)
    fig.suptitle(figure.get("title", "") + (f"\n{note}" if note else ""), fontsize=11)
    save_figure(fig, png, svg)
    plt.close(fig)


def draw_decision_maps(figure: dict[str, Any], table: Path, png: Path, svg: Path, runs: Path) -> None:
    """A grid of decision maps, one per panel (each panel holds one run), as the authors' Figure 2."""
    import numpy as np

    from pl_dsl.report.mapplot import draw_on, legend_handles

    rows = read_table(table)
    entries = [p if isinstance(p, dict) else {"panel": p} for p in figure["panels"]]
    maps = []
    for entry in entries:
        members = [row for row in rows if entry["panel"] in row.get("panels", "").split(";")]
        if len(members) != 1 or members[0].get("status") == DIVERGED:
            state = f"{len(members)} runs" if len(members) != 1 else f"its run {members[0]['status']}"
            raise StageFailure(f"decision-map figure {figure['name']}: panel {entry['panel']} has {state}, "
                               "so there is no single map to draw")
        with np.load(runs / members[0]["run"] / "decision_map.npz") as arrays:
            maps.append((entry.get("title") or entry["panel"], dict(arrays)))
    n_rows, n_cols = figure.get("layout") or (math.ceil(len(maps) / 4), min(4, len(maps)))
    plt = _pyplot()
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(3.0 * n_cols, 3.0 * n_rows + 1.0), squeeze=False,
                             layout="constrained")
    for index, ax in enumerate(grid.flat):
        if index < len(maps):
            draw_on(ax, maps[index][1], maps[index][0])
        else:
            ax.set_axis_off()
    fig.legend(handles=legend_handles(), loc="outside lower center", ncol=3, fontsize=10)
    fig.suptitle(figure.get("title", ""), fontsize=12)
    save_figure(fig, png, svg)
    plt.close(fig)


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure: how it is drawn, the metrics whose stages it needs (asking for them
    switches those stages on), and whether each of its panels must hold exactly one run."""

    draw: Callable[[dict[str, Any], Path, Path, Path, Path], None]
    needs_metrics: tuple[str, ...] = ()
    one_run_per_panel: bool = False
    needs_y: bool = True


FIGURE_KINDS: dict[str, FigureKind] = {
    "curves": FigureKind(draw_curves),
    "decision_maps": FigureKind(draw_decision_maps, needs_metrics=("map_agree",), one_run_per_panel=True, needs_y=False),
}


def draw_figure(figure: dict[str, Any], table: Path, png: Path, svg: Path, runs: Path) -> None:
    """Draw a figure of any kind (see FIGURE_KINDS) from the results table and the runs' files."""
    lookup(FIGURE_KINDS, figure.get("kind", "curves"), "figure kind").draw(figure, table, png, svg, runs)


def draw_plot(plot: dict[str, Any], table: Path, png: Path, svg: Path) -> None:
    """A single plot: metric(s) against one swept field, one line per metric and series value."""
    plt = _pyplot()
    metrics = [plot["y"]] if isinstance(plot["y"], str) else list(plot["y"])
    plan = reduction_plan(plot.get("reduce", "max"), plot.get("axes", []), plot["x"], plot.get("series"))
    rows = read_table(table)
    found = curves(rows, plot["x"], metrics, plan, plot.get("select", PER_METRIC), plot.get("series"))
    xs = sort_values(p.x for points in found.values() for p in points)
    series_values = sort_values(series for _, series in found)
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    position = _x_axis(ax, xs, plot.get("x_scale", "linear"))
    for metric in metrics:
        for series in series_values:
            if (metric, series) not in found:
                continue
            if series is None:
                label, color = metric_label(metric), f"C{metrics.index(metric) % 10}"
            else:
                named = f"{symbol(plot['series'])} = {series}"
                label, color = (named if len(metrics) == 1 else f"{metric_label(metric)}, {named}"), \
                    f"C{series_values.index(series) % 10}"
            _draw_curve(ax, found[(metric, series)], position, label, color, styles[metrics.index(metric) % len(styles)])
    ax.set_xlabel(plot.get("xlabel") or symbol(plot["x"]))
    ax.set_ylabel(plot.get("ylabel") or metrics_label(metrics), fontsize=9)
    reduced = describe_reduction(found.reduced, plot.get("select", PER_METRIC), "mean", found.band, found.banded)
    marked = nonfinite_points(rows, plot["x"])
    note = drawing_note(rows, [marked] if marked else [], width=80)
    ax.set_title(plot.get("title", "") + (f"\n({reduced})" if reduced else "") + (f"\n{note}" if note else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, png, svg)
    plt.close(fig)
