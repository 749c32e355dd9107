"""The report's jobs, each declared once: what a plot, a figure or the claims need to know of an
experiment (their input, plain JSON), how the job turns that input and the results table into
its outputs, and its caption in Snakemake's report. The engine stores each input as a
content-named file, hands it to the job of that kind and knows nothing of what is inside.

Imported by the Snakefile at every start: drawing and claim checking are imported by the jobs."""

from __future__ import annotations

import base64
import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.errors import lookup
from pl_dsl.spec.expand import Experiment


def _item(experiment: Experiment, section: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(item for item in experiment.spec[section] if item["name"] == name)
    return found


def _plot_input(experiment: Experiment, name: str) -> dict[str, Any]:
    plot = _item(experiment, "plots", name)
    return {**plot, "title": plot.get("title", experiment.name), "axes": experiment.axes}


def _figure_input(experiment: Experiment, name: str) -> dict[str, Any]:
    figure = _item(experiment, "figures", name)
    panels = {p.name: {"x": p.x, "set": p.set} for p in experiment.panels}
    title = figure.get("title") or experiment.spec["description"] or experiment.name
    return {**figure, "title": title, "panels_info": panels, "axes": experiment.axes}


def _claims_input(experiment: Experiment, name: str) -> dict[str, Any]:
    return {"claims": experiment.spec["claims"], "axes": experiment.axes,
            "panels": {p.name: p.x for p in experiment.panels}}


def _draw_plot(job: dict[str, Any], table: Path, runs: Path, out: Mapping[str, Path]) -> str:
    from pl_dsl.report.figures import draw_plot

    draw_plot(job, table, out["png"], out["svg"])
    return f"drew {out['png']} and {out['svg']}"


def _draw_figure(job: dict[str, Any], table: Path, runs: Path, out: Mapping[str, Path]) -> str:
    from pl_dsl.report.figures import draw_figure

    draw_figure(job, table, out["png"], out["svg"], runs)
    return f"drew {out['png']} and {out['svg']}"


def _check_claims(job: dict[str, Any], table: Path, runs: Path, out: Mapping[str, Path]) -> str:
    from pl_dsl.report.claims import check_claims

    verdicts = check_claims(job["claims"], table, job["panels"], job["axes"], out["claims"])
    return f"{sum(v.passed for v in verdicts)} of {len(verdicts)} claims pass; {out['claims']}"


def description(experiment: Experiment, name: str = "") -> str:
    """The experiment's description: the caption of its table and claims in the report."""
    return str(experiment.spec["description"] or "")


def _figure_caption(experiment: Experiment, name: str) -> str:
    return str(_item(experiment, "figures", name).get("caption") or description(experiment))


@dataclass(frozen=True)
class ReportJob:
    """One kind of report output, drawn from an experiment's results table."""

    inputs: Callable[[Experiment, str], dict[str, Any]]  # (experiment, item name) -> the job's input
    run: Callable[[dict[str, Any], Path, Path, Mapping[str, Path]], str]  # (input, table, runs dir, outputs) -> log line
    caption: Callable[[Experiment, str], str] = description  # in Snakemake's report


REPORT_JOBS: dict[str, ReportJob] = {
    "plot": ReportJob(_plot_input, _draw_plot),
    "figure": ReportJob(_figure_input, _draw_figure, _figure_caption),
    "claims": ReportJob(_claims_input, _check_claims),
}


def report_job(kind: str) -> ReportJob:
    return lookup(REPORT_JOBS, kind, "report job")


def summary(static: str, experiments: Mapping[str, Experiment], layout: Layout) -> str:
    """The report's opening text, results first: for each experiment its claims (m of n pass, the
    failures named, or that it has none) and its first figure (its first plot when it has no
    figure), so the first screen shows results; then every other figure and plot; then the
    static description."""
    title, _, about = static.strip().partition("\n")
    rule, _, about = about.partition("\n")
    lines = [title, rule, ""]
    rest: list[str] = []
    for name, experiment in experiments.items():
        lines += [*_claims_lines(name, experiment, layout), ""]
        drawings = [(kind, item["name"], path) for kind, items, path_of in
                    (("figure", experiment.spec["figures"], layout.figure), ("plot", experiment.spec["plots"], layout.plot))
                    for item in items if (path := path_of(name, item["name"], "png")).exists()]
        for index, (kind, item, png) in enumerate(drawings):
            (lines if index == 0 else rest).extend(_image_lines(f"**{name}**, {kind} ``{item}``:", png))
    if rest:
        lines += ["More figures", "------------", "", *rest]
    lines += ["About these results", "-------------------", "", about.strip(), ""]
    return "\n".join(lines) + "\n"


def _claims_lines(name: str, experiment: Experiment, layout: Layout) -> list[str]:
    """One experiment's claims in the report: m of n pass, the failures named."""
    claims = layout.claims(name)
    if not claims.exists():
        return [f"**{name}**: {'no claims' if not experiment.spec['claims'] else 'claims not checked yet'}."]
    with open(claims, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    failed = [row for row in rows if row["passed"] != "true"]
    lines = [f"**{name}**: {len(rows) - len(failed)} of {len(rows)} claims pass." + (" Failed:" if failed else "")]
    if failed:
        lines.append("")
    for row in failed:
        expected = " (expected to fail at this scale)" if "expected to fail" in row["detail"] else ""
        claim = row["claim"].replace("*", "\\*")
        lines.append(f"- {claim}: {row['value'] or '-'} against {row['threshold']}{expected}")
    return lines


def _image_lines(caption: str, png: Path) -> list[str]:
    """A PNG inline in the report's text (rst joins the lines of a data URI)."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    chunks = [data[i:i + 100] for i in range(0, len(data), 100)]
    return [caption, "", ".. image::", "   data:image/png;base64,", *(f"   {chunk}" for chunk in chunks),
            "   :width: 100%", ""]
