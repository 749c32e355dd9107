"""Captions say what was done: a plot's title and a figure's legend name only the reductions
really applied to the table (best over lr where there were several lrs beside one x, the mean
and band over seeds where there were several seeds), never one over a field that moves with x
(a zip); and a log axis labels 1, 2 and 5 of every decade."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import pytest

from pl_dsl.report import figures
from pl_dsl.report.figures import draw_curves, draw_plot


def write_table(path: Path, axes: list[str], points: list[tuple[Any, ...]], extra: dict[str, str] | None = None) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["run", *axes, "panels", "g_clean_acc", "agreement", "status"])
        writer.writeheader()
        for index, values in enumerate(points):
            writer.writerow({"run": f"r{index}", **dict(zip(axes, values)), "panels": (extra or {}).get("panels", ""),
                             "g_clean_acc": 0.5 + 0.01 * index, "agreement": 0.6, "status": "ok"})
    return path


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the drawing functions save, kept open for reading."""
    kept: list[Any] = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, png, svg: kept.append(fig))
    monkeypatch.setattr(figures._pyplot(), "close", lambda fig: None)
    return kept


def plot_title(drawn: list[Any], plot: dict[str, Any], table: Path) -> str:
    draw_plot(plot, table, table.with_suffix(".png"), table.with_suffix(".svg"))
    return str(drawn[-1].axes[0].get_title())


def test_a_zip_names_no_reduction_over_the_field_that_moves_with_x(tmp_path: Path, drawn: list[Any]) -> None:
    axes = ["data.dim", "attack.eps"]  # zipped: each d has its own eps
    table = write_table(tmp_path / "zip.csv", axes, [(10, 0.01), (100, 0.03), (1000, 0.1)])
    title = plot_title(drawn, {"name": "p", "title": "zip", "x": "data.dim", "y": "g_clean_acc", "axes": axes}, table)
    assert title == "zip"  # it said "(max over ε)" before


def test_a_grid_names_the_best_over_lr_and_the_seeds_band(tmp_path: Path, drawn: list[Any]) -> None:
    axes = ["data.dim", "training.lr", "seed"]
    table = write_table(tmp_path / "grid.csv", axes, list(itertools.product([10, 100], [0.1, 1.0], [0, 1])))
    plot = {"name": "p", "title": "grid", "x": "data.dim", "y": "g_clean_acc", "axes": axes,
            "reduce": {"training.lr": "max", "seed": "band"}}
    assert plot_title(drawn, plot, table) == "grid\n(max over lr (each metric on its own); line: mean over seed, band: min-max)"
    one_seed = write_table(tmp_path / "one.csv", axes, list(itertools.product([10, 100], [0.1, 1.0], [0])))
    assert plot_title(drawn, plot, one_seed) == "grid\n(max over lr (each metric on its own))"


def test_a_panel_figure_names_what_its_panels_reduced(tmp_path: Path, drawn: list[Any]) -> None:
    axes = ["network.width", "train_g.lr", "seed"]
    table = write_table(tmp_path / "panels.csv", axes, list(itertools.product([10, 100], [1.0], [0, 1, 2])),
                        {"panels": "m"})
    figure = {"name": "f", "title": "fig", "y": ["g_clean_acc", "agreement"], "panels": ["m"], "axes": axes,
              "panels_info": {"m": {"x": "network.width", "set": {}}}, "reduce": {"train_g.lr": "max", "seed": "band"}}
    draw_curves(figure, table, tmp_path / "f.png", tmp_path / "f.svg", tmp_path)
    legend = drawn[-1].legends[0].get_title().get_text()
    assert legend == "line: mean over seed, band: min-max"  # one lr: nothing was maximised over
    table = write_table(tmp_path / "lrs.csv", axes, list(itertools.product([10, 100], [1.0, 0.1], [0])), {"panels": "m"})
    draw_curves(figure, table, tmp_path / "f.png", tmp_path / "f.svg", tmp_path)
    assert drawn[-1].legends[0].get_title().get_text() == "max over $lr_g$ (each metric on its own)"


def test_a_log_axis_labels_enough_ticks_to_read_a_value(tmp_path: Path, drawn: list[Any]) -> None:
    table = write_table(tmp_path / "log.csv", ["network.width"], [(10,), (30,), (100,), (300,), (1000,)])
    plot_title(drawn, {"name": "p", "x": "network.width", "y": "g_clean_acc", "axes": ["network.width"],
                       "x_scale": "log"}, table)
    ax = drawn[-1].axes[0]
    drawn[-1].canvas.draw()
    low, high = ax.get_xlim()
    labels = {t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high and t.get_text()}
    assert {"20", "50", "100", "200", "500"} <= labels, labels
    with_zero = write_table(tmp_path / "sym.csv", ["attack.eps"], [(0,), (0.01,), (0.1,), (1,)])
    plot_title(drawn, {"name": "p", "x": "attack.eps", "y": "g_clean_acc", "axes": ["attack.eps"], "x_scale": "log"},
               with_zero)
    ax = drawn[-1].axes[0]
    drawn[-1].canvas.draw()
    low, high = ax.get_xlim()
    labels = {t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high and t.get_text()}
    assert {"0", "0.02", "0.05", "0.2", "0.5"} <= labels, labels
