"""Where every artifact lives. Rules and code take paths from here, never spell them by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Layout:
    """The artifact tree under one results root (default `results/`), logs under `logs/`."""

    root: Path = Path("results")
    logs: Path = Path("logs")

    def unit(self, stage: str, key: str) -> Path:
        """A unit's folder: its files and its record, shared by every run and experiment needing it."""
        return self.root / "store" / stage / key

    def unit_folders(self, stage: str) -> set[str]:
        """The keys of a stage's units that have a folder in the store (listed in one call: a
        plan's units are looked up in this, not stat'ed one by one)."""
        folder = self.unit(stage, "")
        return set(os.listdir(folder)) if folder.is_dir() else set()

    def table_plan(self, digest: str) -> Path:
        """The runs of an experiment as the results table needs them, named by content."""
        return self.root / "plans" / "tables" / f"{digest}.json"

    def report_spec(self, digest: str) -> Path:
        """A plot's, figure's or claims' spec as its job reads it, named by content."""
        return self.root / "plans" / "report" / f"{digest}.json"

    def batch_plan(self, stage: str, batch: str) -> Path:
        """The unit list of a batch, written when the workflow starts."""
        return self.root / "plans" / stage / f"{batch}.json"

    # A batch's manifest is named by the batch's id (12 hex digits), plus "-r" and the repair tag
    # (8 hex digits) while some of its units are recomputed: a new name, so that Snakemake sees
    # the work. The pattern is the `batch` wildcard's constraint.
    MANIFEST_NAME: ClassVar[str] = "[0-9a-f]{12}(-r[0-9a-f]{8})?"

    @staticmethod
    def manifest_name(batch_id: str, repair_tag: str = "") -> str:
        """The name of a batch's manifest: its id, with the repair tag while it is repaired."""
        return f"{batch_id}-r{repair_tag}" if repair_tag else batch_id

    @staticmethod
    def batch_id(manifest_name: str) -> str:
        """The batch a manifest name stands for (with or without a repair tag)."""
        return manifest_name.split("-r")[0]

    def manifest(self, stage: str, batch: str) -> Path:
        """Marks a finished batch of units (`batch`: its manifest name); what Snakemake tracks."""
        return self.root / "batches" / stage / f"{batch}.json"

    def progress(self, stage: str, batch: str) -> Path:
        """A running batch job's progress (see engine.progress); removed when the job ends."""
        return self.root / "progress" / stage / f"{batch}.json"

    def failure(self, stage: str, key: str) -> Path:
        """Why a unit's last computation failed; removed when the unit is stored."""
        return self.unit(stage, key) / "failed.json"

    def batch_log(self, stage: str, batch: str) -> Path:
        return self.logs / stage / f"{batch}.log"

    def experiment(self, name: str) -> Path:
        return self.root / name

    def table(self, name: str) -> Path:
        """The tidy CSV of all runs of an experiment."""
        return self.experiment(name) / "results.csv"

    def source(self, name: str) -> Path:
        """The spec (path and sha256 of its text) whose runs the experiment's folder holds."""
        return self.experiment(name) / "source.json"

    def runs_dir(self, name: str) -> Path:
        """Holds `<run id>/metrics.json` (and run files such as decision maps) for each run."""
        return self.experiment(name) / "runs"

    def plot(self, name: str, plot: str, ext: str) -> Path:
        return self.experiment(name) / "plots" / f"{plot}.{ext}"

    def figure(self, name: str, figure: str, ext: str) -> Path:
        """A figure in the paper's layout (a grid of panels)."""
        return self.experiment(name) / "figures" / f"{figure}.{ext}"

    def claims(self, name: str) -> Path:
        """One row per claim of the spec: claim, passed, value, threshold, detail."""
        return self.experiment(name) / "claims.csv"

    def experiment_log(self, name: str, what: str) -> Path:
        return self.logs / name / f"{what}.log"
