"""Figures in the paper's layout (a grid of panels, one per varied factor) and single plots,
drawn from a results table with the per-axis reduction of `report.reduce`."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from pl_dsl.engine.store import atomic_path
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
# The paper's names for its three curves; other metrics are shown by their name.
METRIC_LABELS: dict[str, str] = {
    "f_test_acc": "Standard (f, test)", "f_train_acc": "f on D", "g_clean_acc": "Perturbation (g on clean D)",
    "agreement": "Agreement (f, g)", "cos_abs_mean": "mean |cos|", "cos_random": "random |cos|",
}


def symbol(path: str) -> str:
    return SYMBOLS.get(path, path)


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def describe_reduction(reduce: str | dict[str, str], select: str) -> str:
    """How a figure's curves were reduced, in words (the legend's title)."""
    if isinstance(reduce, str):
        return f"{reduce} over the other swept fields"
    parts = [f"{op} over {symbol(axis)}" for axis, op in reduce.items() if op != "band"]
    if parts and select != PER_METRIC:
        parts[-1] += f" (one point, chosen by {select})"
    elif parts:
        parts[-1] += " (each metric on its own)"
    parts += [f"line: mean over {symbol(axis)}, band: min-max" for axis, op in reduce.items() if op == "band"]
    return "; ".join(parts)


def _draw_curve(ax: Any, points: list[Point], position: dict[Any, float] | None, label: str, color: str,
                style: str = "-") -> None:
    """A mean line with markers and, where there are several values per x, their min-max band."""
    xs = [position[p.x] if position is not None else p.x for p in points]
    ax.plot(xs, [p.mean for p in points], marker="o", markersize=3.5, color=color, linestyle=style, label=label)
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
    if scale in ("log", "symlog"):  # plain numbers at the decades, no labels in between
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    return None


def _save(fig: Any, png: Path, svg: Path) -> None:
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
    count = sum(row.get("status") == "diverged" for row in rows)
    return f"{count} of {len(rows)} runs diverged and are not shown (see results.csv)" if count else ""


def draw_figure(figure: dict[str, Any], table: Path, png: Path, svg: Path) -> None:
    """A figure of panels: figure holds its spec plus `panels_info` (panel -> its x field and set fields)
    and the experiment's `axes`."""
    plt = _pyplot()
    rows = read_table(table)
    entries = [p if isinstance(p, dict) else {"panel": p} for p in figure["panels"]]
    n_rows, n_cols = figure.get("layout") or (math.ceil(len(entries) / 2), min(2, len(entries)))
    metrics = [figure["y"]] if isinstance(figure["y"], str) else list(figure["y"])
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(4.3 * n_cols, 3.1 * n_rows + 0.9), squeeze=False,
                             layout="constrained")
    colors = {metric: f"C{i}" for i, metric in enumerate(metrics)}
    for index, ax in enumerate(grid.flat):
        if index >= len(entries):
            ax.set_axis_off()
            continue
        entry = entries[index]
        info = figure["panels_info"][entry["panel"]]
        members = [row for row in rows if entry["panel"] in row.get("panels", "").split(";")]
        plan = reduction_plan(figure.get("reduce", "max"), figure["axes"], info["x"])
        found = curves(members, info["x"], metrics, plan, figure.get("select", PER_METRIC))
        xs = sort_values(p.x for points in found.values() for p in points)
        position = _x_axis(ax, xs, entry.get("x_scale", "linear"))
        for metric in metrics:
            if (metric, None) in found:
                _draw_curve(ax, found[(metric, None)], position, metric_label(metric), colors[metric])
        extras = ", ".join(f"{symbol(k)} = {v}" for k, v in info["set"].items())
        title = entry.get("title") or (f"varying {symbol(info['x'])}" + (f" ({extras})" if extras else ""))
        ax.set_title(textwrap.fill(title, 50), fontsize=10)
        ax.set_xlabel(symbol(info["x"]))
        ax.set_ylabel(" / ".join(metric_label(m).split(" (")[0] for m in metrics), fontsize=9)
        if figure.get("ylim"):
            ax.set_ylim(*figure["ylim"])
        ax.grid(alpha=0.3)
    handles, labels = next((pair for pair in (ax.get_legend_handles_labels() for ax in grid.flat) if pair[0]), ([], []))
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9,
               title=describe_reduction(figure.get("reduce", "max"), figure.get("select", PER_METRIC)), title_fontsize=8)
    note = diverged_note(rows)
    fig.suptitle(figure.get("title", "") + (f"\n{note}" if note else ""), fontsize=11)
    _save(fig, png, svg)
    plt.close(fig)


def draw_plot(plot: dict[str, Any], table: Path, png: Path, svg: Path, experiment: str) -> None:
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
    ax.set_xlabel(symbol(plot["x"]))
    ax.set_ylabel(metric_label(metrics[0]) if len(metrics) == 1 else " / ".join(metric_label(m) for m in metrics),
                  fontsize=9)
    reduced = ", ".join(f"{op} over {symbol(axis)}" for axis, op in plan.items())
    note = diverged_note(rows)
    ax.set_title(plot.get("title", experiment) + (f"\n({reduced})" if reduced else "") + (f"\n{note}" if note else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, png, svg)
    plt.close(fig)
