"""The benchmarks' own accounting, on a real finished run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, snakemake

TINY = (REPO / "tests/specs/valid/tiny.yaml").read_text()


def test_the_tier_report_counts_a_unit_two_specs_share_once(tmp_path: Path) -> None:
    """Two specs that differ only in name share every unit: each spec's line counts them all, the
    total counts them once (it once counted them twice, and the tier's computation came out above
    100 % of cores x wall)."""
    specs = tmp_path / "pair"
    specs.mkdir()
    for name in ("one", "two"):
        (specs / f"{name}.yaml").write_text(TINY.replace("name: tiny", f"name: {name}"))
    done = snakemake(tmp_path, "--config", f"experiments={specs}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run([sys.executable, str(REPO / "benchmarks/paper_tier.py"), "--workdir", str(tmp_path),
                             "--experiments", str(specs)], capture_output=True, text=True, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    lines = {line.split()[0]: line.split() for line in report.stdout.splitlines() if line.split()}
    one, two = float(lines["one"][3]), float(lines["two"][3])
    found = re.search(r"unit compute, all specs.*: ([0-9.]+) s", report.stdout)
    assert found, report.stdout
    total = float(found.group(1))
    assert one == two > 0
    assert total == one, report.stdout
