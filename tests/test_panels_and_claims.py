"""Panels (one-factor sweeps), per-axis reduction, and every claim kind passing and failing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pl_dsl.report.claims import CLAIM_KINDS, check_claims, evaluate, spearman
from pl_dsl.report.reduce import curves, reduction_plan
from pl_dsl.spec.check import check_text

BASE = """
name: p
data: {kind: shifted_gauss, dim: 16, n_train: 20, n_test: 10}
network: {width: 8}
training: {steps: 3}
attack: {eps: 0.05}
seeds: [0, 1]
sweep:
  grid:
    train_f.lr: [1.0, 0.1]
"""


def expand(extra: str):  # type: ignore[no-untyped-def]
    experiment, errors = check_text(BASE + extra, "p.yaml")
    assert not errors, errors
    return experiment


def errors_of(extra: str) -> list[str]:
    experiment, errors = check_text(BASE + extra, "p.yaml")
    assert experiment is None
    return [str(e) for e in errors]


def test_panels_are_a_union_and_the_shared_base_point_runs_once() -> None:
    exp = expand("""
panels:
  - {name: width, vary: {network.width: [4, 8, 16]}}
  - {name: dim, vary: {zip: {data.dim: [8, 16, 32], attack.eps: [0.03, 0.05, 0.07]}}}
""")
    # width: 3 x 2 lr x 2 seeds; dim: the same, minus the base point (width 8, d 16, eps 0.05) it shares.
    assert len(exp.runs) == 12 + 12 - 4
    shared = [r for r in exp.runs if r.panels == ["width", "dim"]]
    assert len(shared) == 4 and all(r.config.network.width == 8 and r.config.data.dim == 16 for r in shared)
    width, dim = exp.panels
    assert (width.x, dim.x) == ("network.width", "data.dim") and len(width.runs) == len(dim.runs) == 12
    # Every axis has a value in every run: the width panel's runs carry the base d and eps.
    assert exp.axes == ["network.width", "data.dim", "attack.eps", "train_f.lr", "seed"]
    assert {r.varied["data.dim"] for r in exp.runs if "dim" not in r.panels} == {16}


def test_panel_overrides_own_axes_and_seeds() -> None:
    exp = expand("""
panels:
  - {name: width, vary: {network.width: [4, 8]}}
  - name: logistic
    vary: {data.dim: [8, 16]}
    set: {training.loss: logistic}
    grid: {train_f.lr: [5.0, 1.0, 0.5], train_g.lr: [0.5, 0.1]}
    seeds: [7]
""")
    logistic = [r for r in exp.runs if "logistic" in r.panels]
    assert len(logistic) == 2 * 3 * 2 * 1
    assert {r.config.train_f.loss for r in logistic} == {"logistic"} and {r.config.seed for r in logistic} == {7}
    assert {r.config.train_f.lr for r in logistic} == {5.0, 1.0, 0.5}
    assert {r.config.train_g.lr for r in logistic} == {0.5, 0.1}
    others = [r for r in exp.runs if "width" in r.panels]
    assert {r.config.train_f.loss for r in others} == {"identity"} and {r.config.seed for r in others} == {0, 1}
    assert {r.varied["training.loss"] for r in others} == {"identity"}


def test_panel_mistakes_are_located() -> None:
    errors = errors_of("""
panels:
  - {name: width, vary: {network.widht: [4, 8]}}
  - name: dim
    vary: {zip: {data.dim: [8, 16], attack.eps: [0.1]}}
  - {name: width, vary: {network.leaky_slope: [0.0, 2.0]}, set: {training.loss: hinge}}
  - {name: x, vary: {data.dim: [8]}, x: network.width}
""")
    assert errors == [
        "p.yaml:13:26: panels[0].vary[\"network.widht\"]: 'network.widht' is not a field of the spec "
        "(did you mean 'network.width'?)",
        "p.yaml:15:17: panels[1].vary.zip: zipped lists must have equal lengths (data.dim: 2, attack.eps: 1)",
        "p.yaml:16:12: panels[2].name: panel name 'width' is used twice (also panels[0])",
        "p.yaml:16:53: panels[2].vary[\"network.leaky_slope\"][1]: swept value for 'network.leaky_slope': "
        "2.0 is greater than or equal to the maximum of 1",
        "p.yaml:16:81: panels[2].set[\"training.loss\"]: value for 'training.loss': "
        "'hinge' is not one of: identity, logistic, exponential",
        "p.yaml:17:41: panels[3].x: 'network.width' is not varied by this panel; it varies: data.dim",
    ]


FIGURE = """
panels:
  - {name: width, vary: {network.width: [4, 8]}}
figures:
  - {name: f, y: [g_clean_acc, nope], panels: [width, height], reduce: {train_f.lr: max}, layout: [1, 1]}
claims:
  - {claim: c, kind: near, metric: agreement, panel: width, at: 5, source: s}
  - {claim: d, kind: increasing, metric: agreement, threshold: 0.5, reduce: {seed: band, data.dim: max}, source: s}
"""


def test_figure_and_claim_mistakes_are_located() -> None:
    errors = errors_of(FIGURE)
    assert errors == [
        "p.yaml:15:32: figures[0].y[1]: unknown metric 'nope'; known: " + errors[0].split("known: ")[1],
        "p.yaml:15:55: figures[0].panels[1]: no panel 'height'; panels: width",
        "p.yaml:15:72: figures[0].reduce: panel 'width' also varies seed: say how to reduce it (max, min, mean or band)",
        "p.yaml:15:99: figures[0].layout: 1 x 1 panels cannot hold 2",
        "p.yaml:17:5: claims[0]: a claim of kind 'near' needs 'target'",
        "p.yaml:17:5: claims[0]: a claim of kind 'near' needs 'tolerance'",
        "p.yaml:17:65: claims[0].at: 5 is not a value of network.width in panel 'width' (4, 8)",
        "p.yaml:18:5: claims[1]: a claim of kind 'increasing' needs 'panel'",
        "p.yaml:18:100: claims[1].reduce[\"data.dim\"]: 'data.dim' is not a swept axis; swept: network.width, train_f.lr, seed",
    ]


def rows(points: list[tuple[float, float, float, int, float]]) -> list[dict[str, str]]:
    """Results rows of (x, lr, seed-independent value a, seed, value b)."""
    return [{"x": str(x), "lr": str(lr), "seed": str(seed), "a": str(a), "b": str(b), "panels": "p"}
            for x, lr, a, seed, b in points]


TABLE = rows([
    # x, lr, a, seed, b: at each x the best lr for a is not the best for b.
    (1, 0.1, 0.6, 0, 0.9), (1, 1.0, 0.8, 0, 0.5), (1, 0.1, 0.6, 1, 0.7), (1, 1.0, 0.7, 1, 0.6),
    (2, 0.1, 0.9, 0, 0.9), (2, 1.0, 0.5, 0, 0.8), (2, 0.1, 0.95, 1, 0.6), (2, 1.0, 0.4, 1, 0.9),
])


def test_reduction_per_axis_keeps_the_seed_spread_and_offers_both_selections() -> None:
    plan = reduction_plan({"lr": "max", "seed": "band"}, ["x", "lr", "seed"], "x")
    per_metric = curves(TABLE, "x", ["a", "b"], plan)
    assert [(p.x, p.values) for p in per_metric[("a", None)]] == [(1, (0.8, 0.7)), (2, (0.9, 0.95))]
    assert [(p.x, p.values) for p in per_metric[("b", None)]] == [(1, (0.9, 0.7)), (2, (0.9, 0.9))]
    # Selected by a: b is read at the lr that is best for a (0.5 at x=1 seed 0, not b's own best 0.9).
    by_a = curves(TABLE, "x", ["a", "b"], plan, select="a")
    assert [(p.x, p.values) for p in by_a[("b", None)]] == [(1, (0.5, 0.6)), (2, (0.9, 0.6))]
    point = per_metric[("a", None)][1]
    assert (point.mean, point.low, point.high, point.statistic("median")) == pytest.approx((0.925, 0.9, 0.95, 0.925))
    # A word reduces every other axis, the seeds included.
    assert [p.values for p in curves(TABLE, "x", ["a"], reduction_plan("mean", ["x", "lr", "seed"], "x"))[("a", None)]] \
        == [(pytest.approx(0.675),), (pytest.approx(0.6875),)]


def claim(kind: str, **fields: object) -> dict[str, object]:
    return {"claim": kind, "kind": kind, "metric": "a", "panel": "p", "reduce": {"lr": "max", "seed": "band"},
            "source": "a test", **fields}


@pytest.mark.parametrize("kind,passing,failing", [
    ("at_least", {"at": 2, "threshold": 0.9}, {"at": 1, "threshold": 0.9}),
    ("at_most", {"threshold": 0.99}, {"threshold": 0.8}),
    ("near", {"at": 1, "target": 0.7, "tolerance": 0.06}, {"target": 0.5, "tolerance": 0.1}),
    ("increasing", {"threshold": 0.5}, {"threshold": 1.5}),
    ("decreasing", {"threshold": -1.0}, {"threshold": 0.5}),
    ("ratio_at_least", {"over": "b", "threshold": 0.9}, {"over": "b", "threshold": 1.1}),
    # a (median over seeds) is 0.75 at x = 1, 0.925 at 2 and 0.98 at 3.
    ("rises_by", {"threshold": 0.2}, {"threshold": 0.25}),
    ("rises_by", {"from": 2, "to": 3, "threshold": 0.05}, {"from": 1, "to": 2, "threshold": 0.2}),
    ("flat", {"threshold": 0.25}, {"threshold": 0.2}),
])
def test_every_claim_kind_passes_and_fails(kind: str, passing: dict[str, object], failing: dict[str, object]) -> None:
    table = TABLE + rows([(3, 0.1, 0.99, 0, 0.95), (3, 0.1, 0.97, 1, 0.95)])
    good = evaluate(claim(kind, **passing), table, {"p": "x"}, ["x", "lr", "seed"])
    bad = evaluate(claim(kind, **failing), table, {"p": "x"}, ["x", "lr", "seed"])
    assert good.passed and not bad.passed, (good, bad)
    assert good.value is not None and good.detail


def test_every_kind_is_tested_and_spearman_is_right() -> None:
    tested = {"at_least", "at_most", "near", "increasing", "decreasing", "ratio_at_least", "rises_by", "flat"}
    assert set(CLAIM_KINDS) == tested
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 1, 2]) == pytest.approx(0.866, abs=1e-3)


def test_claims_file_has_one_row_per_claim_and_a_missing_point_fails(tmp_path: Path) -> None:
    table = tmp_path / "results.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TABLE[0]))
        writer.writeheader()
        writer.writerows(TABLE)
    out = tmp_path / "claims.csv"
    claims = [claim("at_least", at=2, threshold=0.9),
              claim("at_least", at=7, threshold=0.9, expected_failure="no such point at this scale")]
    check_claims(claims, table, {"p": "x"}, ["x", "lr", "seed"], out)
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [list(row) for row in written] == [["claim", "passed", "value", "threshold", "detail", "source"]] * 2
    assert [row["passed"] for row in written] == ["true", "false"]
    assert "no value of a at x = 7" in written[1]["detail"] and "expected to fail at this scale" in written[1]["detail"]
    assert "(median over seed at each point)" in written[0]["detail"] and written[0]["source"] == "a test"


def test_a_claim_on_several_panels_holds_only_where_it_holds_on_each() -> None:
    table = TABLE + [{**row, "x": str(float(row["x"]) + 10), "panels": "q",
                      "a": str(float(row["a"]) - 0.3)} for row in TABLE]
    panels = {"p": "x", "q": "x"}
    both = evaluate(claim("at_least", panel=["p", "q"], threshold=0.3), table, panels, ["x", "lr", "seed"])
    assert both.passed and both.value == pytest.approx(0.45) and "2 of 2 panels hold" in both.detail
    one = evaluate(claim("at_least", panel=["p", "q"], threshold=0.6), table, panels, ["x", "lr", "seed"])
    assert not one.passed and one.value == pytest.approx(0.45) and "1 of 2 panels hold" in one.detail


def test_claim_sources_and_figure_kinds_are_checked() -> None:
    errors = errors_of("""
panels:
  - {name: width, vary: {network.width: [4, 8]}}
figures:
  - {name: maps, kind: decision_maps, panels: [width], reduce: {train_f.lr: max, seed: band}}
  - {name: curves, panels: [width], reduce: {train_f.lr: max, seed: band}}
claims:
  - {claim: c, kind: flat, metric: agreement, panel: [width, depth], threshold: 0.1, to: 5,
     reduce: {train_f.lr: max, seed: band}, source: the paper}
""")
    assert errors == [
        "p.yaml:15:48: figures[0].panels[0]: panel 'width' has 8 runs; a decision_maps figure draws one run per panel "
        "(one value, one seed, no grid)",
        "p.yaml:16:5: figures[1]: a figure of kind 'curves' needs 'y' (the metrics to plot)",
        "p.yaml:18:62: claims[0].panel[1]: no panel 'depth'; panels: width",
        "p.yaml:18:90: claims[0].to: 5 is not a value of network.width in panel 'width' (4, 8)",
    ]
    unsourced = errors_of("""
claims:
  - {claim: c, kind: at_least, metric: agreement, threshold: 0.9}
""")
    assert unsourced == ["p.yaml:13:5: claims[0]: missing required field 'source'"]


def test_a_panel_field_both_set_and_swept_is_an_error_wherever_the_sweep_comes_from() -> None:
    errors = errors_of("""
panels:
  - {name: own, vary: {network.width: [4, 8]}, set: {network.width: 16}}
  - {name: common, vary: {data.dim: [8, 16]}, set: {train_f.lr: 0.5}}
""")
    assert errors == [
        "p.yaml:13:54: panels[0].set[\"network.width\"]: 'network.width' is both set and swept for this panel "
        "(also at panels[0].vary[\"network.width\"])",
        "p.yaml:14:53: panels[1].set[\"train_f.lr\"]: 'train_f.lr' is both set and swept for this panel "
        "(also at sweep.grid[\"train_f.lr\"])",
    ]
