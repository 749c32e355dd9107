"""pl-dsl as users install it: a wheel carries the schema, and resolved runs take every default
from that schema and nowhere else."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from pl_dsl.spec.check import check_text
from pl_dsl.spec.config import to_json
from pl_dsl.spec.schema import defaults, load_schema

from conftest import REPO


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with pl-dsl installed from its wheel (not editable); its bin/ folder."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            str(REPO), "-w", str(wheels)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("pl_dsl-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # Dependencies (torch, jsonschema, snakemake, ...) are reused from this interpreter's
    # site-packages; a plain path entry does not run the editable install's hook, so pl_dsl comes
    # from the wheel.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "reuse_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def test_a_wheel_installed_into_a_fresh_venv_validates_a_shipped_spec_outside_the_checkout(
        wheel_venv: Path, tmp_path: Path) -> None:
    env_dir, python = wheel_venv.parent, wheel_venv / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    spec = REPO / "experiments/quickstart.yaml"
    result = subprocess.run([str(env_dir / "bin" / "pl-dsl"), "validate", str(spec)], cwd=outside,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{spec}: valid, 8 runs\n"
    where = subprocess.run([str(python), "-c", "import pl_dsl; print(pl_dsl.__file__)"], cwd=outside,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), where


def test_a_spec_of_a_name_and_a_data_kind_resolves_to_the_schema_defaults() -> None:
    experiment, errors = check_text("name: empty\ndata: {kind: shifted_gauss}\n", "empty.yaml")
    assert experiment is not None and not errors
    (run,) = experiment.runs
    resolved = to_json(run.config)
    top = load_schema()["properties"]
    for section in ("network", "theory", "decision_map"):
        assert resolved[section] == defaults(section), section
    for net in ("train_f", "train_g"):
        assert resolved[net] == defaults("training")
    for field in ("scenario", "seed", "device"):
        assert resolved[field] == top[field]["default"]
    data = defaults("data")
    assert resolved["data"] == {"kind": "shifted_gauss", **{k: data[k] for k in ("dim", "n_train", "n_test", "mean_shift")},
                                "classes": None, "root": None}
    attack = defaults("attack")
    assert math.isclose(resolved["attack"]["eps"], attack["eps_per_coord"] * math.sqrt(data["dim"]))
    for field in ("norm", "l0_k", "targets", "steps"):
        assert resolved["attack"][field] == attack[field]


def test_the_schema_file_for_editors_is_the_one_the_package_reads() -> None:
    assert (REPO / "schemas/experiment.schema.json").resolve() == (REPO / "pl_dsl/spec/experiment.schema.json")


def test_atomic_writes_leave_files_readable_like_any_other(tmp_path: Path) -> None:
    import stat

    from pl_dsl.engine.store import atomic_path

    mask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        with atomic_path(tmp_path / "atomic.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644


def test_no_package_index_host_names_in_the_repository() -> None:
    # Packages are named, never their indexes' hosts: pip, apt-get and npm use their configured
    # sources. (The host names are written reversed here, so this file does not hold them either.)
    hosts = [name[::-1] for name in ("gro.ipyp", "gro.detsohnohtyp", "gro.hcrotyp.daolnwod", "gro.sjmpn.yrtsiger",
                                     "gro.naibed.bed")]
    found = subprocess.run(["git", "grep", "-nIE", "|".join(h.replace(".", r"\.") for h in hosts)], cwd=REPO,
                           capture_output=True, text=True)
    assert found.returncode == 1 and not found.stdout, found.stdout  # git grep: 1 = no match


def test_the_shipped_schema_is_the_one_the_stages_declare() -> None:
    # pl_dsl/spec/experiment.schema.json is written by `pl-dsl schema` from the sections the
    # registered stages declare: a stage's edit must be followed by regenerating it.
    from pl_dsl.spec.schema import SCHEMA_PATH, schema_text
    from pl_dsl.stages import REGISTRY

    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(REGISTRY.schema), \
        "run `pl-dsl schema -o pl_dsl/spec/experiment.schema.json`"


def test_every_enum_of_the_schema_is_the_table_that_implements_it() -> None:
    from pl_dsl.report.claims import CLAIM_KINDS
    from pl_dsl.report.figures import FIGURE_KINDS
    from pl_dsl.report.reduce import OPERATIONS, STATISTICS
    from pl_dsl.science.attack import NORMS, TARGETS
    from pl_dsl.science.datasets import DATA_KINDS
    from pl_dsl.science.nn import LOSSES, OPTIMIZERS, PRECISIONS, READOUTS, SCHEDULES
    from pl_dsl.science.theory import MARGIN_SCALES
    from pl_dsl.spec.config import CAUSAL_SCHEDULES
    from pl_dsl.spec.schema import subschema
    from pl_dsl.stages.common import SCENARIOS

    def enum(path: str) -> list[str]:
        found = subschema(path)
        assert found is not None and "enum" in found, path
        return list(found["enum"])

    tables = {"data.kind": DATA_KINDS, "training.loss": LOSSES, "training.optimizer": OPTIMIZERS,
              "training.schedule": SCHEDULES, "training.precision": PRECISIONS, "network.readout": READOUTS,
              "attack.norm": NORMS, "robustness.norm": NORMS, "attack.targets": TARGETS, "scenario": SCENARIOS,
              "theory.margins": MARGIN_SCALES}
    for path, table in tables.items():
        assert sorted(enum(path)) == sorted(table), path
    assert set(CAUSAL_SCHEDULES) == set(SCHEDULES)
    schema = load_schema()
    claims = schema["properties"]["claims"]["items"]["properties"]
    assert sorted(claims["kind"]["enum"]) == sorted(CLAIM_KINDS)
    assert sorted(claims["statistic"]["enum"]) == sorted(STATISTICS)
    figures = schema["properties"]["figures"]["items"]["properties"]
    assert sorted(figures["kind"]["enum"]) == sorted(FIGURE_KINDS)
    words = next(option for option in schema["$defs"]["reduce"]["oneOf"] if "enum" in option)["enum"]
    assert sorted(words) == sorted(OPERATIONS)


def test_a_wheel_runs_a_spec_in_a_folder_of_ones_own(wheel_venv: Path, tmp_path: Path) -> None:
    """`pl-dsl run` from a wheel, outside any checkout: the workflow the package carries runs the
    spec there (train f -> attack -> train g -> evaluate -> plot)."""
    spec = tmp_path / "mine.yaml"
    spec.write_text((REPO / "tests/specs/valid/tiny.yaml").read_text().replace("name: tiny", "name: mine"))
    ran = subprocess.run([str(wheel_venv / "pl-dsl"), "run", "mine.yaml", "--cores", "2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "runs 6/6 done" in ran.stdout and (tmp_path / "results/mine/plots/by_eps.png").exists()
    log = next((tmp_path / "logs/run").glob("*.log")).read_text()
    # the workflow the package carries, not the checkout's (dependencies come from this environment)
    assert f"Snakefile: {wheel_venv.parent}" in log and "/pl_dsl/workflow/Snakefile" in log
    assert f"{REPO}/pl_dsl" not in log and f"{REPO}/Snakefile" not in log


def test_the_cli_tests_that_run_outside_the_checkout_pass_on_the_wheel(wheel_venv: Path) -> None:
    """tests/test_names.py (every command from a folder outside the checkout) with the wheel's
    pl-dsl in place of the editable install."""
    env = {**os.environ, "PL_DSL_TEST_PYTHON": str(wheel_venv / "python")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_names.py"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
