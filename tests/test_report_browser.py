"""`snakemake --report` as a reader sees it: rendered by a real browser (headless Chromium), it
opens with each experiment's claims (m of n pass, failures named) and its figures, and shows job
parameters as plain text (paths), not escaped JSON."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import snakemake, write_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and os.environ.get("PL_DSL_REQUIRE_BROWSER") != "1",
                                reason="no Chromium (Debian: apt-get install chromium)")

SPEC = """
name: claimsy
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 20}
training: {steps: 30, lr: 0.5, momentum: 0.0, schedule: constant}
attack: {targets: balanced, eps_per_coord: 0.05}
seeds: [0, 1]
panels:
  - {name: eps, vary: {attack.eps_per_coord: [0.0, 0.02, 0.05]}}
figures:
  - {name: acc, y: [f_train_acc, g_clean_acc, agreement], panels: [eps], reduce: {seed: band}}
claims:
  - {claim: "g is above chance", kind: at_least, metric: g_clean_acc, panel: eps, at: 0.05, threshold: 0.55,
     reduce: {seed: band}, source: a test}
  - {claim: "g is perfect without perturbations", kind: at_least, metric: g_clean_acc, panel: eps, at: 0.0,
     threshold: 0.99, reduce: {seed: band}, source: a test}
"""


def chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a page, doing `action` (--dump-dom, --screenshot=...)."""
    assert CHROMIUM is not None, "PL_DSL_REQUIRE_BROWSER=1 but no Chromium"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *action, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def rendered(page: Path, profile: Path) -> str:
    """The page's DOM after Chromium ran its scripts, without the scripts themselves."""
    return re.sub(r"<script.*?</script>", "", chromium(page, profile, "--dump-dom").stdout, flags=re.S)


def report_page(tmp_path: Path, name: str, text: str) -> Path:
    """Run a spec, then write its Snakemake report; returns the report's path."""
    spec = write_spec(tmp_path, name, text)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    report = snakemake(tmp_path, "--config", f"experiments={spec}", "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr[-2000:]
    return tmp_path / "report.html"


def test_the_report_opens_with_the_claims_and_the_figures(tmp_path: Path) -> None:
    page = rendered(report_page(tmp_path, "claimsy", SPEC), tmp_path / "chromium")
    summary = re.search(r"<strong>claimsy</strong>: 1 of 2 claims pass\. Failed:</p>\s*<ul[^>]*>\s*<li>(.*?)</li>", page)
    assert summary, page[:3000]
    assert summary.group(1).startswith("g is perfect without perturbations: ")
    images = re.findall(r'<img[^>]*src="data:image/png;base64,[^"]{1000,}"', page)
    assert images, "the figure is not on the opening page"
    raw = (tmp_path / "report.html").read_text()
    assert "panels_info" not in raw  # a figure's spec is a file the job reads, not JSON in its parameters


PLOT_ONLY = """
name: plotty
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 20}
training: {steps: 30, lr: 0.5, momentum: 0.0, schedule: constant}
attack: {targets: balanced}
seeds: [0, 1]
sweep:
  grid:
    attack.eps_per_coord: [0.01, 0.05]
plots:
  - {name: by_eps, x: attack.eps_per_coord, y: [g_clean_acc, agreement], series: seed}
"""


def screenshot(page: Path, profile: Path, png: Path) -> Any:
    """The first 1400 x 900 screen of the page in Chromium, as an RGB array."""
    from matplotlib import image

    chromium(page, profile, "--window-size=1400,900", "--hide-scrollbars", f"--screenshot={png}")
    assert png.exists()
    return (image.imread(png)[..., :3] * 255).round().astype(int)


def test_the_first_screen_shows_a_figure_also_without_claims_or_figures(tmp_path: Path) -> None:
    page = rendered(report_page(tmp_path, "plotty", PLOT_ONLY), tmp_path / "chromium")
    assert "<strong>plotty</strong>: no claims." in page
    pixels = screenshot(tmp_path / "report.html", tmp_path / "chromium", tmp_path / "first.png")
    assert pixels.shape[:2] == (900, 1400)
    # The plot's curves, in matplotlib's first two colours (C0 #1f77b4, C1 #ff7f0e), are on that screen.
    for color in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        assert int((pixels == color).all(axis=-1).sum()) > 100, f"no {color} pixels: the plot is not on the first screen"
