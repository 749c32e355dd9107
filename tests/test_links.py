"""Everything the README, docs/ and the shipped specs' claims cite exists in the repository: a
relative link resolves from the page that holds it, and a file path or file name written in the
text names a file of the repository (the package's own paths, like `engine/runner.py`, by their
tail). Outputs a run writes and files a user creates are listed below, each with its reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

EXTENSIONS = "md|py|yaml|yml|png|svg|json|rst|toml|smk|sh|txt|csv|npz|pt|html|ipynb"
# A path or file name in running text: not part of a URL, a placeholder (<name>) or a glob.
PATH = re.compile(rf"(?<![\w/.<>{{}}*~$:-])((?:\.{{1,2}}/)*(?:[\w.+-]+/)*[\w+-][\w.+-]*\.(?:{EXTENSIONS}))(?![\w/])")
LINK = re.compile(r"\]\(([^)\s]+)\)")
EXTERNAL_LINK = re.compile(r"\[[^\]]*\]\((?:https?|mailto):[^)]*\)")
# Files that are not in the repository by design.
NOT_IN_REPOSITORY = {
    "spec.yaml": "results/<name>/spec.yaml, written by `pl-dsl run` for a derived experiment",
    "report.html": "written by `snakemake --report`",
    "decision_map.npz": "a stored unit's file",
    "model.pt": "a stored unit's file",
    "perturbations.pt": "a stored unit's file",
    "record.json": "a stored unit's record",
    "results.csv": "an experiment's table under results/",
    "metrics.json": "a run's file under results/",
    "pl-dsl.toml": "a user project's own file naming its stage modules",
    "experiments/width.yaml": "the README's example spec, saved by the reader",
    "mlflow.db": "MLflow's default store, written by `pl-dsl export`",
}


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in listed.splitlines() if (REPO / line).exists()]


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def claim_texts() -> list[tuple[str, str]]:
    """(where, text) of every string field of every claim of every shipped spec."""
    found = []
    for spec in sorted((REPO / "experiments").rglob("*.yaml")):
        for index, claim in enumerate(yaml.safe_load(spec.read_text(encoding="utf-8")).get("claims") or []):
            found += [(f"{spec.relative_to(REPO)}: claims[{index}].{key}", value) for key, value in claim.items()
                      if isinstance(value, str)]
    return found


def unresolved(text: str, page: Path | None, files: list[str]) -> list[str]:
    """What `text` cites that the repository does not have."""
    missing = []
    if page is not None:
        for target in LINK.findall(text):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path) and not (page.parent / path).exists():
                missing.append(f"link {target}")
    for path in PATH.findall(EXTERNAL_LINK.sub("", text)):
        tail = re.sub(r"^(\.{1,2}/)+", "", path)
        if path in NOT_IN_REPOSITORY or tail in NOT_IN_REPOSITORY:
            continue
        if not any(file == tail or file.endswith("/" + tail) for file in files):
            missing.append(f"file {path}")
    return missing


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_and_path_of_a_page_resolves(page: Path) -> None:
    assert unresolved(page.read_text(encoding="utf-8"), page, tracked_files()) == []


def test_every_path_a_claim_cites_resolves() -> None:
    files = tracked_files()
    problems = [f"{where}: {missing}" for where, text in claim_texts() for missing in unresolved(text, None, files)]
    assert problems == []


def test_the_checker_finds_what_does_not_exist(tmp_path: Path) -> None:
    files = tracked_files()
    page = REPO / "docs" / "spec.md"
    text = ("see [the guide](docs/cluster.md), [spec](spec.md#data-sets), DOMAIN.md, `engine/runner.py`, "
            "results/<experiment>/results.csv and [theirs](https://example.org/bash/train.sh)")
    assert unresolved(text, page, files) == ["link docs/cluster.md", "file DOMAIN.md"]
