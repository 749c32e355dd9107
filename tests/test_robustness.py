"""The robustness stage: against a linear network (leaky slope 1) the strongest l2 / linf attack
of size eps lowers the margin y f(x) by exactly eps times the dual norm of f's gradient, so
robust accuracy has a closed form; end to end, the stage is off unless asked for, and at
eps = 0 every robust accuracy is the clean test accuracy."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from pl_dsl.science.data import Dataset
from pl_dsl.science.nn import TwoLayerNet, outputs
from pl_dsl.spec.config import DataConfig, NetworkConfig
from pl_dsl.stages.robustness import RobustnessConfig, RobustnessParams, compute

from conftest import REPO, computed_units, snakemake, write_spec

DIM, WIDTH = 20, 30


class LinearNetworks:
    """A unit context holding one data set and two linear networks (leaky slope 1) as f and g."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(7)
        y = torch.randint(0, 2, (400,), generator=generator).float() * 2 - 1
        self.data = Dataset(torch.zeros(1, DIM), torch.ones(1),
                            torch.randn(400, DIM, generator=generator) + 0.5 * y[:, None], y)
        self.nets = {name: TwoLayerNet(DIM, WIDTH, 1.0, "gaussian", True, generator) for name in ("f", "g")}

    def dataset(self, data: DataConfig, seed: int) -> Dataset:
        return self.data

    def network(self, input_name: str, network: NetworkConfig, dim: int) -> TwoLayerNet:
        return self.nets[input_name]

    def gradient(self, name: str) -> torch.Tensor:
        net = self.nets[name]
        return (net.weight.detach().T @ net.readout).squeeze()


def params(norm: str, eps: float, steps: int) -> RobustnessParams:
    data = DataConfig("shifted_gauss", DIM, 1, 400, 0.5)
    return RobustnessParams(0, data, NetworkConfig(WIDTH, 1.0, "gaussian", True),
                            RobustnessConfig(True, norm, eps, 10, steps, 2.5 / steps))


@pytest.mark.parametrize("norm,dual", [("l2", 2.0), ("linf", 1.0)])
@pytest.mark.parametrize("steps", [1, 10])
def test_robust_accuracy_of_linear_networks_matches_the_closed_form(norm: str, dual: float, steps: int) -> None:
    ctx = LinearNetworks()
    x, y = ctx.data.x_test, ctx.data.y_test
    margins = {name: y * outputs(net, x).detach() for name, net in ctx.nets.items()}
    w_f, w_g = ctx.gradient("f"), ctx.gradient("g")
    eps = float(margins["f"].abs().median() / w_f.norm(p=dual))  # about half the points can be flipped
    metrics: dict[str, Any] = compute(ctx, params(norm, eps, steps)).metrics  # type: ignore[arg-type]

    def expected(name: str, w: torch.Tensor) -> float:
        return (margins[name] > eps * w.norm(p=dual) + 1e-5).float().mean().item()

    assert 0.1 < expected("f", w_f) < (margins["f"] > 0).float().mean().item()
    assert metrics["f_robust_acc"] == pytest.approx(expected("f", w_f), abs=1 / len(y))
    assert metrics["g_robust_acc"] == pytest.approx(expected("g", w_g), abs=1 / len(y))
    # g on the points attacked against f: they moved by eps along -y times f's steepest direction.
    step = w_f / w_f.norm() if norm == "l2" else w_f.sign()
    moved = x - eps * y[:, None] * step
    g_on_f = (y * outputs(ctx.nets["g"], moved).detach() > 0).float().mean().item()
    assert metrics["g_on_f_adv_acc"] == pytest.approx(g_on_f, abs=1 / len(y))


SPEC = (REPO / "tests/specs/valid/tiny.yaml").read_text().replace("name: tiny", "name: robust").replace(
    "attack.eps_per_coord: [0.01, 0.02, 0.05]", "robustness.eps: [0.0, 0.5]").replace(
    "{name: by_eps, x: attack.eps_per_coord, y: g_clean_acc, series: seed}",
    "{name: robust, x: robustness.eps, y: [f_robust_acc, g_robust_acc, g_on_f_adv_acc], series: seed,\n"
    "     xlabel: evaluation eps, ylabel: robust accuracy}")


def test_the_stage_runs_only_when_asked_and_equals_clean_accuracy_at_eps_zero(tmp_path: Path) -> None:
    plain = write_spec(tmp_path, "plain", (REPO / "tests/specs/valid/tiny.yaml").read_text())
    ran = snakemake(tmp_path, "--config", f"experiments={plain}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "robustness" not in computed_units(tmp_path)  # off by default
    assert "robust_eps" not in (tmp_path / "results/tiny/results.csv").read_text().splitlines()[0]  # nor its column
    robust = write_spec(tmp_path, "robust", SPEC)
    since = time.time()
    ran = snakemake(tmp_path, "--config", f"experiments={robust}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    computed = computed_units(tmp_path, since)
    assert computed["robustness"] == 4 and computed["train_f"] == 0  # 2 seeds x 2 eps; f as in `plain`
    with open(tmp_path / "results/robust/results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    at_zero = [row for row in rows if float(row["robustness.eps"]) == 0.0]
    assert len(at_zero) == 2 and all(float(row["robust_eps"]) == float(row["robustness.eps"]) for row in rows)
    for row in at_zero:
        assert float(row["f_robust_acc"]) == float(row["f_test_acc"])
        assert float(row["g_robust_acc"]) == float(row["g_on_f_adv_acc"]) == float(row["g_test_acc"])
    assert (tmp_path / "results/robust/plots/robust.png").exists()


def test_figures_take_axis_labels_and_keep_coinciding_curves_apart(tmp_path: Path) -> None:
    import matplotlib

    from pl_dsl.report.figures import curve_styles, draw_figure

    metrics = ["f_robust_acc", "g_robust_acc", "g_on_f_adv_acc"]
    assert len(set(curve_styles(metrics).values())) == 3  # g's two curves coincide in the example
    table = tmp_path / "results.csv"
    table.write_text("run,panels,robustness.eps,seed,status,f_robust_acc,g_robust_acc,g_on_f_adv_acc\n"
                     "r1,p,0.0,0,ok,0.9,0.8,0.8\nr2,p,1.0,0,ok,0.6,0.5,0.5\n")
    figure = {"name": "f", "y": metrics, "ylabel": "accuracy under attack", "reduce": {"seed": "band"},
              "panels": [{"panel": "p", "xlabel": "evaluation epsilon"}], "title": "t",
              "panels_info": {"p": {"x": "robustness.eps", "set": {}}}, "axes": ["robustness.eps", "seed"]}
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG
        draw_figure(figure, table, tmp_path / "f.png", tmp_path / "f.svg", tmp_path)
    svg = (tmp_path / "f.svg").read_text()
    assert "accuracy under attack" in svg and "evaluation epsilon" in svg and "robustness.eps" not in svg
