"""The time left a run shows, and how far off it was, told at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pl_dsl import launch
from pl_dsl.engine.paths import Layout


def test_the_estimate_leaves_out_start_up_and_is_judged_at_the_end(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Four units of 10 estimated seconds each: the first is stored after 30 s of start-up, the
    others every 5 s. The time left counts from the first unit's rate (5 s a unit), not from the
    start-up, and the end says how the first estimate compares with the time the run took."""
    clock = [0.0]
    monkeypatch.setattr(launch.time, "monotonic", lambda: clock[0])
    layout = Layout(tmp_path / "results")
    units = [("train_g", f"u{i}") for i in range(4)]
    tracker = launch.Tracker(layout, {unit: 10.0 for unit in units}, {"train_g": 4}, {"train_g": 0}, {}, started=0.0)

    def store(unit: tuple[str, str], at: float) -> str:
        clock[0] = at
        (layout.unit(*unit)).mkdir(parents=True)
        (layout.unit(*unit) / "record.json").write_text("{}")
        tracker.poll()
        return tracker.line()

    assert "left" not in store(units[0], 30.0)  # one unit: no rate yet
    assert "about 0m10s left" in store(units[1], 35.0)  # 5 s per unit since the first, two to go
    assert "about 0m05s left" in store(units[2], 40.0)
    store(units[3], 45.0)
    said = tracker.accuracy()
    assert "first, at 0m35s: about 0m10s left, it took 0m10s (1.00x)" in said
    assert "halfway, at 0m40s: about 0m05s left, it took 0m05s (1.00x)" in said
