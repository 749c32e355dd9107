"""The theory stage: Phi in closed form against Monte Carlo, the direction metric on cases with
known answers, f-hat / g-hat against direct summation, and a map through Snakemake."""

from __future__ import annotations

import csv
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from pl_dsl.science.theory import (
    MARGIN_SCALES,
    PlaneCoordinates,
    conditions,
    cosine,
    direction,
    f_hat,
    g_hat,
    phi,
    phi_monte_carlo,
    random_abs_cosine,
)
from pl_dsl.stages.decision_map import map_metrics

from conftest import REPO, computed_units, snakemake

SAMPLES = 200_000


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 0.99])
@pytest.mark.parametrize("shape", [(4, 3, 2), (6, 5, 30), (3, 7, 200)])
def test_closed_form_matches_monte_carlo_within_its_error(gamma: float, shape: tuple[int, int, int]) -> None:
    n, m, d = shape
    gen = torch.Generator().manual_seed(n * 100 + m + int(gamma * 10))
    z1 = torch.randn(n, d, generator=gen, dtype=torch.float64) * 1.5
    z2 = torch.cat([z1[:2], torch.randn(m - 2, d, generator=gen, dtype=torch.float64)])  # includes z1 = z2 pairs
    exact = phi(z1, z2, gamma)
    estimate = phi_monte_carlo(z1, z2, gamma, SAMPLES, gen)
    # Each MC term lies in [gamma^2, 1]: its standard deviation is at most (1 - gamma^2) / 2.
    tolerance = 5 * (1 - gamma**2) / 2 / math.sqrt(SAMPLES) + 1e-12
    assert (exact - estimate).abs().max().item() < tolerance
    assert exact.min().item() >= gamma**2 - 1e-12 and exact.max().item() <= 1 + 1e-12


def test_closed_form_limits() -> None:
    z = torch.randn(3, 10, dtype=torch.float64)
    for gamma in (0.0, 0.5, 0.9):  # rho = 1 on the diagonal: Phi(z, z) = (1 + gamma^2) / 2
        expected = torch.full((3,), (1 + gamma**2) / 2, dtype=torch.float64)
        assert torch.allclose(phi(z, z, gamma).diagonal(), expected)
    # A linear activation (gamma = 1) has phi' = 1 everywhere.
    assert torch.allclose(phi(z, torch.randn(5, 10, dtype=torch.float64), 1.0), torch.ones(3, 5, dtype=torch.float64))


def test_direction_metric_on_known_cases() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 30, generator=gen)
    y = torch.where(torch.randn(200, generator=gen) > 0, 1.0, -1.0)
    y_adv = torch.where(torch.randn(200, generator=gen) > 0, 1.0, -1.0)
    w = direction(x, y, 0.3)
    aligned = 0.1 * y_adv[:, None] * w / w.norm(dim=1, keepdim=True)
    assert torch.allclose(cosine(aligned, y_adv[:, None] * w), torch.ones(200), atol=1e-5)
    assert cosine(aligned, w).abs().mean().item() == pytest.approx(1.0, abs=1e-5)
    random = torch.randn(200, 30, generator=gen)
    assert cosine(random, w).abs().mean().item() == pytest.approx(random_abs_cosine(30), abs=0.03)
    assert random_abs_cosine(100) == pytest.approx(math.sqrt(2 / (math.pi * 100)), rel=0.01)


def test_limits_and_direction_match_direct_summation() -> None:
    gen = torch.Generator().manual_seed(1)
    n, d, gamma = 7, 5, 0.25
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.tensor([1.0, -1, 1, 1, -1, -1, 1], dtype=torch.float64)
    x_adv = x + 0.1 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    z = torch.randn(4, d, generator=gen, dtype=torch.float64)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> float:
        rho = (a @ b / d + 1) / math.sqrt((a @ a / d + 1) * (b @ b / d + 1))
        return (1 + gamma) ** 2 / 4 + (1 - gamma) ** 2 * math.asin(rho) / (2 * math.pi)

    w_direct = torch.stack([sum(kernel(x[i], x[k]) * y[k] * x[k] for k in range(n)) for i in range(n)])
    f_direct = [sum(kernel(x[i], zz) * y[i] * (x[i] @ zz) for i in range(n)) / n for zz in z]
    g_direct = [sum(kernel(x_adv[i], zz) * sum(kernel(x[i], x[k]) * y[k] * (x[k] @ zz) for k in range(n))
                    for i in range(n)) / n**2 for zz in z]
    # A tiny memory bound forces one row per chunk: the chunking must not change the result.
    w = direction(x, y, gamma, max_bytes=64)
    assert torch.allclose(w, w_direct)
    assert torch.allclose(f_hat(x, y, z, gamma, max_bytes=64), torch.tensor(f_direct, dtype=torch.float64))
    assert torch.allclose(g_hat(x_adv, w, z, gamma, max_bytes=64), torch.tensor(g_direct, dtype=torch.float64))


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_limits_on_a_plane_in_its_coordinates_equal_the_limits_in_full(gamma: float) -> None:
    """A decision map computes f-hat and g-hat of its points in the plane's three coordinates:
    in fp32, at a map's sizes (d = 784, points far from and near the data), the same values as
    in the d coordinates up to rounding, and the same signs wherever a value is not within
    rounding of 0."""
    gen = torch.Generator().manual_seed(2)
    n, d = 300, 784
    x = torch.rand(n, d, generator=gen)
    y = torch.where(torch.rand(n, generator=gen) > 0.5, 1.0, -1.0)
    x[y > 0, :100] += 0.5  # two classes with different means, not orthogonal to each other
    x_adv = 0.3 * torch.randn(n, d, generator=gen)
    u, v = x[y > 0].mean(0), x[y < 0].mean(0)
    basis = torch.stack([u / u.norm(), v / v.norm()])
    points = 15 * torch.rand(2000, 2, generator=gen) - 2
    w = direction(x, y, gamma)
    coordinates = PlaneCoordinates(basis)
    assert torch.allclose(coordinates.of(x).norm(dim=1), x.norm(dim=1), rtol=1e-5)
    x_in, x_adv_in, w_in, z_in = coordinates.of(x), coordinates.of(x_adv), coordinates.of(w), \
        coordinates.of_points(points)
    kernel = partial(phi, dim=d)
    for full, planar in ((f_hat(x, y, points @ basis, gamma), f_hat(x_in, y, z_in, gamma, kernel=kernel)),
                         (g_hat(x_adv, w, points @ basis, gamma), g_hat(x_adv_in, w_in, z_in, gamma, kernel=kernel))):
        scale = full.abs().max()
        assert (full - planar).abs().max() <= 1e-4 * scale
        clear = full.abs() > 1e-4 * scale
        assert clear.float().mean() > 0.9 and torch.equal(full.sign()[clear], planar.sign()[clear])
    # phi in the plane's coordinates is phi of the points themselves
    assert torch.allclose(phi(x[:50], points[:40] @ basis, gamma), kernel(x_in[:50], z_in[:40], gamma), atol=1e-5)


def test_relative_margins_are_fractions_of_the_limits_on_d() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(50, 8, generator=gen, dtype=torch.float64) + 0.5
    y = torch.where(torch.randn(50, generator=gen, dtype=torch.float64) > 0, 1.0, -1.0).double()
    x_adv = 0.05 * torch.randn(50, 8, generator=gen, dtype=torch.float64)
    w = direction(x, y, 0.1)
    scale_f, scale_g = MARGIN_SCALES["relative"](x, y, x_adv, w, 0.1)
    # f-hat on D from the direction (<x_n, w_n> / N) equals f-hat computed directly.
    assert scale_f == pytest.approx(f_hat(x, y, x, 0.1).abs().mean().item(), rel=1e-12)
    assert scale_g == pytest.approx(g_hat(x_adv, w, x, 0.1).abs().mean().item(), rel=1e-12)
    assert MARGIN_SCALES["absolute"](x, y, x_adv, w, 0.1) == (1.0, 1.0)
    fh, gh = torch.tensor([3.0, -0.5, 2.0, -4.0]), torch.tensor([1.0, -2.0, -3.0, -0.1])
    cond_a, cond_b, cond_c = conditions(fh, gh, 0.1, 0.2, (10.0, 2.0))  # margins 1.0 and 0.4
    assert cond_a.tolist() == [True, False, True, True]
    assert cond_b.tolist() == [True, True, True, False]
    assert cond_c.tolist() == [True, True, False, True]


def test_map_metrics_see_where_the_limits_and_networks_agree_and_where_not() -> None:
    grid = torch.linspace(-1, 1, 40)
    s, t = torch.meshgrid(grid, grid, indexing="xy")
    fhat, ghat = s - t, s - t + 0.2
    lazy = {"f": 3 * fhat, "g": 2 * ghat, "fhat": fhat, "ghat": ghat}  # the networks follow their limits
    every = (fhat.abs() > 0.25) & (ghat.abs() > 0.25)
    good = map_metrics(lazy, every)
    assert good["map_fhat_agrees_f"] == good["map_ghat_agrees_g"] == 1.0 and good["map_agree_cond_all"] == 1.0
    assert 0.9 < good["map_agree"] < 1.0 and 0.5 < good["map_cond_all"] < 1.0  # a band between the two lines
    # A g that predicts one class everywhere (a collapsed g) departs from g-hat and from f.
    collapsed = {**lazy, "g": torch.ones_like(fhat)}
    bad = map_metrics(collapsed, every)
    assert bad["map_ghat_agrees_g"] < 0.6 and bad["map_agree"] < 0.6 and bad["map_agree_cond_all"] < 0.6
    assert map_metrics(lazy, torch.zeros_like(every))["map_agree_cond_all"] is None


def test_theory_metrics_and_maps_through_snakemake(tmp_path: Path) -> None:
    spec = REPO / "tests/specs/valid/theory_tiny.yaml"
    result = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results/theory-tiny/results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        # Thm 3.3: perturbations point along the kernel-weighted sum, far above chance.
        assert float(row["cos_signed_mean"]) > max(0.9, 2 * float(row["cos_random"]))
        assert 0 <= float(row["cond_all"]) <= 1
        assert 0 <= float(row["map_agree_cond_all"]) <= 1 and float(row["map_fhat_agrees_f"]) > 0.5
        run_dir = tmp_path / "results/theory-tiny/runs" / row["run"]
        arrays = np.load(run_dir / "decision_map.npz")
        assert arrays["f"].shape == arrays["g"].shape == arrays["agree"].shape == (40, 40)
        assert arrays["data_st"].shape == (60, 2) and arrays["limits"].shape == (4,)
        assert (run_dir / "decision_map.png").stat().st_size > 10_000
    for plot in ("cos_vs_d", "limits_vs_d"):
        assert (tmp_path / f"results/theory-tiny/plots/{plot}.png").exists()
    # Changing only a margin recomputes theory and maps, never the networks.
    edited = tmp_path / "theory_tiny.yaml"
    edited.write_text(spec.read_text().replace("margin_g: 0.0", "margin_g: 0.5"))
    assert edited.read_text() != spec.read_text()
    before = time.time()
    rerun = snakemake(tmp_path, "--config", f"experiments={edited}", "force=1")  # another file, the same name
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert set(computed_units(tmp_path, since=before)) == {"theory", "decision_map"}
