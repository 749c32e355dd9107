"""Draw a plot spec from a results table: metric(s) against a swept field, reduced over the rest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import Any

from pl_dsl.engine.store import atomic_path
from pl_dsl.errors import lookup
from pl_dsl.report.results import parse_cell, read_table

# How the swept axes a plot does not show are reduced (the paper: best over the learning rates).
REDUCERS: dict[str, Callable[[list[float]], float]] = {"max": max, "mean": fmean}


def series_points(rows: list[dict[str, str]], plot: dict[str, Any]) -> dict[tuple[str, Any], list[tuple[Any, float]]]:
    """(metric, series value) -> sorted (x, y) points, y reduced over the unplotted axes."""
    metrics = [plot["y"]] if isinstance(plot["y"], str) else plot["y"]
    reduce = lookup(REDUCERS, plot.get("reduce", "max"), "reduction")
    grouped: dict[tuple[str, Any, Any], list[float]] = defaultdict(list)
    for row in rows:
        series = parse_cell(row[plot["series"]]) if plot.get("series") else None
        for metric in metrics:
            if row.get(metric, "") != "":  # empty: undefined for this run (e.g. no point met the conditions)
                grouped[(metric, series, parse_cell(row[plot["x"]]))].append(float(row[metric]))
    lines: dict[tuple[str, Any], list[tuple[Any, float]]] = defaultdict(list)
    for (metric, series, x), values in grouped.items():
        lines[(metric, series)].append((x, reduce(values)))
    return {key: sorted(points, key=lambda p: (str(type(p[0])), p[0])) for key, points in lines.items()}


def draw(plot: dict[str, Any], table: Path, png: Path, svg: Path, experiment: str) -> None:
    """Write the plot as PNG and SVG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lines = series_points(read_table(table), plot)
    xs = sorted({x for points in lines.values() for x, _ in points}, key=lambda v: (str(type(v)), v))
    categorical = plot.get("x_scale") == "category" or any(isinstance(x, str) for x in xs)
    position = {x: i for i, x in enumerate(xs)}
    metrics = sorted({metric for metric, _ in lines})
    series_values = sorted({series for _, series in lines}, key=str)
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (metric, series), points in sorted(lines.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        label = metric if series is None else f"{metric}, {plot['series']}={series}"
        if len(metrics) == 1 and series is not None:
            label = f"{plot['series']}={series}"
        px = [position[x] if categorical else x for x, _ in points]
        ax.plot(px, [y for _, y in points], marker="o", label=label,
                color=f"C{series_values.index(series) % 10}" if series is not None else None,
                linestyle=styles[metrics.index(metric) % len(styles)])
    if categorical:
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    elif plot.get("x_scale") == "log":
        ax.set_xscale("log")
    ax.set_xlabel(plot["x"])
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    others = [a for a in plot.get("axes", []) if a not in (plot["x"], plot.get("series"))]
    remaining = f" ({plot.get('reduce', 'max')} over {', '.join(others)})" if others else ""
    ax.set_title(plot.get("title", experiment) + remaining, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for path in (png, svg):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=120)
    plt.close(fig)
