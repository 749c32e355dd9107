"""Damage to stored results (truncated, deleted, tampered files, edited records) is noticed by
a plain rerun, which recomputes exactly the damaged units and what was computed from them;
`pl-dsl status --verify` finds what file times cannot show; `pl-dsl gc` clears what no spec uses."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

from conftest import REPO, computed_units, rows_without_times, run_cli, snakemake, write_spec

TINY = (REPO / "tests/specs/valid/tiny.yaml").read_text()


def rows(workdir: Path) -> list[dict[str, str]]:
    return rows_without_times(workdir / "results/tiny/results.csv")


def unit_of(workdir: Path, stage: str, seed: int, eps: float | None = None) -> Path:
    """The store folder of a stage's unit for the run with this seed (and eps per coordinate),
    found through the table plan, which lists each run's unit keys."""
    plan = json.loads(next((workdir / "results/plans/tables").glob("*.json")).read_text())
    for run in plan["runs"]:
        if run["varied"]["seed"] == seed and (eps is None or run["varied"]["attack.eps_per_coord"] == eps):
            return workdir / "results/store" / stage / run["units"][stage]
    raise AssertionError(f"no run with seed {seed} and eps {eps}")


def shown(path: Path, workdir: Path) -> str:
    """A path as the messages show it: relative to the folder snakemake runs in."""
    return str(path.relative_to(workdir))


def rerun(workdir: Path, spec: Path, *extra: str) -> tuple[str, Counter[str]]:
    moment = max(p.stat().st_mtime for p in (workdir / "results/batches").rglob("*.json"))
    result = snakemake(workdir, "--config", f"experiments={spec}", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr, computed_units(workdir, moment)


def test_damage_is_noticed_and_repaired_with_its_dependents(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    reference = rows(tmp_path)

    # Truncate seed 0's f, delete the perturbations of one run of seed 1.
    f_model = unit_of(tmp_path, "train_f", 0) / "model.pt"
    f_model.write_bytes(f_model.read_bytes()[:100])
    perturbations = unit_of(tmp_path, "attack", 1, 0.02) / "perturbations.pt"
    perturbations.unlink()
    output, computed = rerun(tmp_path, spec)
    assert shown(f_model, tmp_path) in output and shown(perturbations, tmp_path) in output and "damaged" in output
    # f of seed 0 and its 3 runs downstream; the one attack of seed 1 and its g and evaluation.
    assert computed == {"train_f": 1, "attack": 4, "train_g": 4, "evaluate": 4}, computed
    assert rows(tmp_path) == reference

    # Change a g in place, and a metric in an evaluation record by hand.
    g_model = unit_of(tmp_path, "train_g", 0, 0.01) / "model.pt"
    g_model.write_bytes(bytes(b ^ 0xFF for b in g_model.read_bytes()))
    record_path = unit_of(tmp_path, "evaluate", 1, 0.05) / "record.json"
    record = json.loads(record_path.read_text())
    record["metrics"]["g_clean_acc"] = 1.0 - record["metrics"]["g_clean_acc"]
    record_path.write_text(json.dumps(record))
    output, computed = rerun(tmp_path, spec)
    assert shown(g_model, tmp_path) in output and shown(record_path, tmp_path) in output
    assert computed == {"train_g": 1, "evaluate": 2}, computed
    assert rows(tmp_path) == reference

    # A change that keeps the file's time: only hashing finds it.
    attack_file = unit_of(tmp_path, "attack", 0, 0.05) / "perturbations.pt"
    times = attack_file.stat()
    content = bytearray(attack_file.read_bytes())
    content[-40] ^= 0x01
    attack_file.write_bytes(bytes(content))
    os.utime(attack_file, ns=(times.st_atime_ns, times.st_mtime_ns))
    verified = run_cli("status", str(spec), "--verify", cwd=tmp_path)
    assert verified.returncode == 1 and shown(attack_file, tmp_path) in verified.stdout and "1 damaged" in verified.stdout
    output, computed = rerun(tmp_path, spec, "verify=full")
    assert computed == {"attack": 1, "train_g": 1, "evaluate": 1}, computed
    assert rows(tmp_path) == reference
    assert run_cli("status", str(spec), "--verify", cwd=tmp_path).returncode == 0

    # Repaired: at most the table is collected once more, no unit is computed again.
    output, computed = rerun(tmp_path, spec)
    assert sum(computed.values()) == 0, computed


def test_a_job_reading_a_changed_input_names_it(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    # Stage by stage (no fused jobs), so that a later job reads f from disk.
    assert snakemake(tmp_path, "--config", f"experiments={spec}", "fuse_seconds=0", "--until", "attack").returncode == 0
    f_model = unit_of(tmp_path, "train_f", 0) / "model.pt"
    times = f_model.stat()
    f_model.write_bytes(bytes(b ^ 0x01 for b in f_model.read_bytes()))
    os.utime(f_model, ns=(times.st_atime_ns, times.st_mtime_ns))
    # train_g does not read f, evaluate does: it refuses the changed file and names it.
    result = snakemake(tmp_path, "--config", f"experiments={spec}", "fuse_seconds=0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{shown(f_model, tmp_path)} was changed after it was written" in result.stderr


def test_gc_removes_what_no_spec_and_no_results_folder_references(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    spec.write_text(TINY.replace("seeds: [0, 1]", "seeds: [0]"))
    # results/tiny still shows seed 1: its units stay until the edited spec has rerun.
    assert run_cli("gc", str(spec), cwd=tmp_path).stdout.startswith("0 unreferenced")
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    listed = run_cli("gc", str(spec), cwd=tmp_path)
    assert listed.returncode == 0 and "would remove" in listed.stdout and "--yes" in listed.stdout
    assert len(list((tmp_path / "results/store/train_f").iterdir())) == 2  # nothing deleted yet
    removed = run_cli("gc", str(spec), "--yes", cwd=tmp_path)
    assert removed.returncode == 0 and "MB freed" in removed.stdout
    assert len(list((tmp_path / "results/store/train_f").iterdir())) == 1
    assert len(list((tmp_path / "results/store/evaluate").iterdir())) == 3
    # What the remaining spec needs is intact: nothing to recompute.
    again = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert run_cli("gc", str(spec), cwd=tmp_path).stdout.startswith("0 unreferenced")


def test_gc_keeps_the_units_of_results_made_by_specs_kept_elsewhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "my-specs"
    elsewhere.mkdir()
    spec = write_spec(elsewhere, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    (tmp_path / "experiments").mkdir()
    write_spec(tmp_path / "experiments", "other", TINY.replace("name: tiny", "name: other").replace("[0, 1]", "[5]"))
    stored = len(list((tmp_path / "results/store").glob("*/*")))
    listed = run_cli("gc", cwd=tmp_path)  # only specs under experiments/: none of them uses the store
    assert listed.returncode == 0 and listed.stdout.startswith("0 unreferenced"), listed.stdout
    assert run_cli("gc", "--yes", cwd=tmp_path).returncode == 0
    assert len(list((tmp_path / "results/store").glob("*/*"))) == stored
    # Without its results folder, nothing references them any more.
    shutil.rmtree(tmp_path / "results/tiny")
    assert run_cli("gc", cwd=tmp_path).stdout.count("would remove results/store/") == stored


def test_a_damaged_results_table_is_a_clear_error(tmp_path: Path) -> None:
    table = tmp_path / "results/tiny/results.csv"
    table.parent.mkdir(parents=True)
    table.write_bytes(b"\xff\xfe garbage, not a table\n\x00\x00")
    result = run_cli("results", "tiny", "--results", str(tmp_path / "results"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is damaged" in result.stderr and "--forcerun collect_results" in result.stderr
