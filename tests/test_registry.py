"""The stage registry end to end: a user's own stage with two named inputs runs through the real
workflow untouched, changed stage code recomputes exactly that stage and what reads it, and
comments, docstrings and layout recompute nothing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pl_dsl.engine import fingerprint
from pl_dsl.engine.fingerprint import code_fingerprint
from pl_dsl.engine.plan import run_units
from pl_dsl.engine.registry import Output, Registry, Stage
from pl_dsl.science.data import make_dataset
from pl_dsl.science.nn import build_network, predict
from pl_dsl.spec.check import check_text
from pl_dsl.stages import REGISTRY
from pl_dsl.stages.common import BaseParams

from conftest import REPO, computed_units, run_cli, snakemake, write_spec

TINY = (REPO / "tests/specs/valid/tiny.yaml").read_text()

# A stage with two named inputs, declared in a module of the user's own, outside pl_dsl.
EXTRA_STAGE = '''
"""train_agreement: how often the trained f and g agree on f's own training set."""
from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage
from pl_dsl.stages.common import BaseParams


def compute(ctx, params):
    from pl_dsl.science.nn import predict

    data = ctx.dataset(params.data, params.seed)
    f = ctx.network("f", params.network, data.x.shape[1])
    g = ctx.network("g", params.network, data.x.shape[1])
    agree = (predict(f, data.x) == predict(g, data.x)).float().mean().item()
    return Output({"agreement.json": {"value": agree}}, {"train_agreement": agree})


STAGE = Stage(
    name="train_agreement", params=BaseParams, compute=compute, cost=lambda params: 1.0,
    inputs={"f": "train_f", "g": "train_g"},
    writes={"agreement.json": "the agreement, as a file"},
    metrics={"train_agreement": "fraction of training points where sign f = sign g"},
    batch_size=4, gpu=False,
)
'''


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def stage_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's 'Job stats' table (empty when nothing is to be done)."""
    table = output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in output else ""
    counts = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return {rule: n for rule, n in counts.items() if rule in REGISTRY.names or rule == "train_agreement"}


def test_an_extra_stage_with_two_named_inputs_runs_through_the_real_workflow(tmp_path: Path) -> None:
    modules = tmp_path / "mine"
    modules.mkdir()
    (modules / "agreement_stage.py").write_text(EXTRA_STAGE)
    spec = write_spec(tmp_path, "tiny", TINY)
    env = {"PYTHONPATH": f"{modules}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = snakemake(tmp_path, "--config", f"experiments={spec}", "stage_modules=agreement_stage", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert computed_units(tmp_path)["train_agreement"] == 6
    rows = rows_of(tmp_path / "results/tiny/results.csv")
    assert len(rows) == 6 and "train_agreement" in rows[0] and "time_train_agreement" in rows[0]

    # The value in the table is what f and g really do on the training set.
    experiment, errors = check_text(TINY, "tiny.yaml")
    assert experiment is not None and not errors
    by_run = {row["run"]: row for row in rows}
    for run in experiment.runs:
        units = run_units(run, REGISTRY)
        data = make_dataset(run.config.data, run.config.seed)
        predictions = []
        for stage in ("train_f", "train_g"):
            model = build_network(run.config.network, run.config.data.dim, torch.Generator())
            stored = tmp_path / "results/store" / stage / units[stage].key / "model.pt"
            model.load_state_dict(torch.load(stored, weights_only=True)["state"])
            predictions.append(predict(model, data.x))
        expected = (predictions[0] == predictions[1]).float().mean().item()
        assert float(by_run[run.id]["train_agreement"]) == pytest.approx(expected)
        metrics = json.loads((tmp_path / "results/tiny/runs" / run.id / "metrics.json").read_text())
        assert metrics["metrics"]["train_agreement"] == pytest.approx(expected)

    # A module without STAGE is a clear error, before anything runs.
    (modules / "not_a_stage.py").write_text("X = 1\n")
    bad = snakemake(tmp_path, "--config", f"experiments={spec}", "stage_modules=not_a_stage", "-n", env=env)
    assert bad.returncode != 0 and "module 'not_a_stage' declares no STAGE" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_registry_rejects_unknown_inputs_and_duplicate_metrics() -> None:
    def compute(ctx: object, params: BaseParams) -> Output:
        return Output({})

    lonely = Stage(name="lonely", params=BaseParams, compute=compute, cost=lambda p: 1.0, writes={}, metrics={},
                   inputs={"x": "no_such_stage"})
    with pytest.raises(ValueError, match="needs stage 'no_such_stage'"):
        Registry([*REGISTRY, lonely])
    clash = Stage(name="clash", params=BaseParams, compute=compute, cost=lambda p: 1.0, writes={},
                  metrics={"agreement": "again"})
    with pytest.raises(ValueError, match="metric 'agreement' is declared by stages 'evaluate' and 'clash'"):
        Registry([*REGISTRY, clash])
    with pytest.raises(KeyError, match="unknown stage 'nope'; known: train_f, attack"):
        REGISTRY["nope"]


def copy_code(target: Path) -> Path:
    """A private copy of the workflow and the package, so the test can edit the code."""
    target.mkdir()
    for item in ("Snakefile", "rules", "pl_dsl", "report"):
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, target / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / item)
    return target


def run_copy(code: Path, workdir: Path, spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The workflow of a copy of the code, stage by stage (no fused jobs: dry runs name the stages)."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "snakemake", "-s", str(code / "Snakefile"), "-d", str(workdir),
               "--cores", "2", "--config", f"experiments={spec}", "fuse_seconds=0", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_changed_attack_code_recomputes_the_attack_and_what_reads_it_but_not_f(tmp_path: Path) -> None:
    code = copy_code(tmp_path / "code")
    workdir = tmp_path / "work"
    workdir.mkdir()
    spec = write_spec(tmp_path, "tiny", TINY)
    first = run_copy(code, workdir, spec)
    assert first.returncode == 0, first.stderr[-3000:]
    before = computed_units(workdir)
    assert before == {"train_f": 2, "attack": 6, "train_g": 6, "evaluate": 6}

    # A comment, a docstring and blank lines in the attack and the network code: nothing to do.
    attack_py, nn_py = code / "pl_dsl/science/attack.py", code / "pl_dsl/science/nn.py"
    original = attack_py.read_text()
    attack_py.write_text(original.replace('"""r_n minimising', '# a comment\n\n    """The perturbation r_n minimising'))
    nn_py.write_text(nn_py.read_text().replace("def train(", "# a comment about training\n\n\ndef train("))
    dry = run_copy(code, workdir, spec, "--dry-run")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]

    # A change in how attacks are computed: attack, train_g and evaluate run again, train_f does not.
    attack_py.write_text(original.replace("clamp_min(1e-30)", "clamp_min(1e-32)"))
    dry = run_copy(code, workdir, spec, "--dry-run")
    assert set(stage_jobs(dry.stdout)) == {"attack", "train_g", "evaluate"}, dry.stdout[-2000:]
    second = run_copy(code, workdir, spec)
    assert second.returncode == 0, second.stderr[-3000:]
    after = computed_units(workdir)
    assert after == {"train_f": 2, "attack": 12, "train_g": 12, "evaluate": 12}


def test_fingerprints_follow_imports_and_ignore_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint, "CACHE", tmp_path / "cache")  # the edited modules' digests stay here
    fingerprint._module_digest.cache_clear()
    root = tmp_path / "pl_dsl"
    shutil.copytree(REPO / "pl_dsl", root, ignore=shutil.ignore_patterns("__pycache__"))
    modules = {stage.name: stage.module for stage in REGISTRY}
    base = {name: code_fingerprint(module, root) for name, module in modules.items()}
    assert base == {stage.name: stage.fingerprint.split(".v")[0] for stage in REGISTRY}

    def changed_after(path: str, old: str, new: str) -> set[str]:
        """The stages whose fingerprint moves when `old` becomes `new` in one module."""
        file = root / path
        text = file.read_text()
        assert old in text
        file.write_text(text.replace(old, new, 1))
        fingerprint._module_digest.cache_clear()
        now = {name: code_fingerprint(module, root) for name, module in modules.items()}
        file.write_text(text)
        fingerprint._module_digest.cache_clear()
        return {name for name in modules if now[name] != base[name]}

    assert changed_after("science/theory.py", "clamp_(-1.0, 1.0)", "clamp_(-1.0, 1.00)") == set()  # same tree
    assert changed_after("science/theory.py", "clamp_(-1.0, 1.0)", "clamp_(-0.5, 1.0)") == {"theory", "decision_map"}
    assert changed_after("science/attack.py", "clamp_min(1e-30)", "clamp_min(1e-32)") == {"attack", "robustness"}
    assert changed_after("science/nn.py", "chunk: int = 65536", "chunk: int = 65537") == set(modules)
    assert changed_after("stages/train_g.py", 'members, "g"', 'members, "G"') == {"train_g"}
    assert changed_after("engine/plan.py", "DEFAULT_MIN_BATCHES = 2", "DEFAULT_MIN_BATCHES = 3") == set()


def test_module_digests_are_kept_on_disk_under_their_sources_hash(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(fingerprint, "CACHE", cache)
    fingerprint._module_digest.cache_clear()
    module = REGISTRY["train_g"].module
    first = code_fingerprint(module)
    assert first == REGISTRY["train_g"].fingerprint.split(".v")[0]
    files = sorted(cache.glob("*.json"))
    assert {json.loads(file.read_text())["module"] for file in files} >= {module, "pl_dsl.science.nn"}

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed although its digest was on disk")

    # A later process (the in-process cache cleared) reads the digests instead of parsing.
    fingerprint._module_digest.cache_clear()
    with monkeypatch.context() as patched:
        patched.setattr(fingerprint.ast, "parse", no_parsing)
        assert code_fingerprint(module) == first
    # A damaged file is parsed again and rewritten; the fingerprint is the same.
    files[0].write_text("{")
    fingerprint._module_digest.cache_clear()
    assert code_fingerprint(module) == first
    assert len(json.loads(files[0].read_text())["digest"]) == 64
    # An unwritable cache only costs the parsing.
    shutil.rmtree(cache)
    cache.write_text("a file where the folder should be")
    fingerprint._module_digest.cache_clear()
    assert code_fingerprint(module) == first
    monkeypatch.setattr(fingerprint, "CACHE", None)  # no home directory
    fingerprint._module_digest.cache_clear()
    assert code_fingerprint(module) == first
    fingerprint._module_digest.cache_clear()


# A user's stage with a section of its own (`agreement: {points: train | test}`), named in the
# project's pl-dsl.toml: the one place that validate, runs, results, schema and Snakemake all read.
SECTION_STAGE = '''
"""agreement: how often f and g agree on the training or the test points."""
from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import BaseParams


@dataclass(frozen=True)
class AgreementConfig:
    enabled: bool
    points: str


@dataclass(frozen=True)
class AgreementParams(BaseParams):
    agreement: AgreementConfig


def compute(ctx, params):
    from pl_dsl.science.nn import predict

    data = ctx.dataset(params.data, params.seed)
    f = ctx.network("f", params.network, data.x.shape[1])
    g = ctx.network("g", params.network, data.x.shape[1])
    x = data.x if params.agreement.points == "train" else data.x_test
    return Output({}, {"agreement_on": (predict(f, x) == predict(g, x)).float().mean().item()})


STAGE = Stage(
    name="agreement_on", params=AgreementParams, compute=compute, cost=lambda params: 1.0,
    inputs={"f": "train_f", "g": "train_g"}, writes={},
    metrics={"agreement_on": "fraction of the chosen points where sign f = sign g"},
    sections=(Section("agreement", AgreementConfig, schema_beside(__file__)),), gpu=False,
    switch="agreement.enabled",
)
'''
SECTION_SCHEMA = {"properties": {"agreement": {
    "type": "object", "additionalProperties": False, "default": {}, "description": "Where agreement_on counts.",
    "properties": {"enabled": {"type": "boolean", "default": False, "description": "compute it"},
                   "points": {"enum": ["train", "test"], "default": "train", "description": "the points"}}}}}


def test_a_user_stage_named_in_the_project_file_is_known_to_every_command(tmp_path: Path) -> None:
    (tmp_path / "agreement_on.py").write_text(SECTION_STAGE)
    (tmp_path / "agreement_on.schema.json").write_text(json.dumps(SECTION_SCHEMA))
    spec = write_spec(tmp_path, "tiny", TINY.replace("y: g_clean_acc", "y: agreement_on") + "agreement: {points: test}\n")
    before = run_cli("validate", str(spec), cwd=tmp_path)
    assert before.returncode == 1 and "agreement: unknown field" in before.stderr  # not named anywhere yet
    plain = write_spec(tmp_path, "plain", TINY)
    ids_before = [run["id"] for run in json.loads(run_cli("runs", "--json", str(plain), cwd=tmp_path).stdout)]
    (tmp_path / "pl-dsl.toml").write_text('stage_modules = ["agreement_on"]\n')
    assert run_cli("validate", str(spec), cwd=tmp_path).returncode == 0
    # The stage is off unless asked for: a spec that does not ask keeps every run id it had.
    assert [run["id"] for run in json.loads(run_cli("runs", "--json", str(plain), cwd=tmp_path).stdout)] == ids_before
    schema = json.loads(run_cli("schema", cwd=tmp_path).stdout)
    assert schema["properties"]["agreement"]["properties"]["points"]["enum"] == ["train", "test"]
    ran = snakemake(tmp_path, "--config", f"experiments={spec}")  # no stage_modules: the project file says it
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = rows_of(tmp_path / "results/tiny/results.csv")
    assert len(rows) == 6 and all(0.0 <= float(row["agreement_on"]) <= 1.0 for row in rows)
    assert (tmp_path / "results/tiny/plots/by_eps.png").exists()
    shown = run_cli("results", "tiny", "-m", "agreement_on", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    header = next(line for line in shown.stdout.splitlines() if "run" in line and "seed" in line)
    assert header.count("agreement_on") == 1  # a metric column, not also a swept axis
    # --config stage_modules still overrides the file (here: with nothing, so the section is unknown).
    overridden = snakemake(tmp_path, "--config", f"experiments={spec}", "stage_modules=", "-n")
    assert overridden.returncode == 1 and "agreement: unknown field" in overridden.stderr


# A user's stage that evaluates f on a second data set of its own section (`eval_data`): the
# section declares the field a data set, and gets the data kind's resolution, its field checks
# and the missing-file check like the core `data`, with no edit to pl-dsl.
SECOND_DATA_STAGE = '''
"""eval_second: f's accuracy on the test points of a second data set."""
from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage
from pl_dsl.spec.config import DataConfig
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import BaseParams, accuracy


@dataclass(frozen=True)
class SecondParams(BaseParams):
    eval_data: DataConfig


def compute(ctx, params):
    from pl_dsl.science.nn import predict

    data = ctx.dataset(params.eval_data, params.seed)
    f = ctx.network("f", params.network, data.x.shape[1])
    return Output({}, {"f_second_acc": accuracy(predict(f, data.x_test), data.y_test),
                       "second_n_test": float(len(data.y_test))})


STAGE = Stage(
    name="eval_second", params=SecondParams, compute=compute, cost=lambda params: 1.0,
    inputs={"f": "train_f"}, writes={},
    metrics={"f_second_acc": "f on the second data set's test points", "second_n_test": "its test points"},
    sections=(Section("eval_data", DataConfig, schema_beside(__file__), data_fields=("",)),), gpu=False,
)
'''
SECOND_DATA_SCHEMA = {"properties": {"eval_data": {"type": "object", "default": {},
                                                   "description": "The second data set (any data kind)."}}}


def test_a_data_set_in_a_user_section_is_resolved_and_checked_like_the_core_one(tmp_path: Path) -> None:
    (tmp_path / "eval_second.py").write_text(SECOND_DATA_STAGE)
    (tmp_path / "eval_second.schema.json").write_text(json.dumps(SECOND_DATA_SCHEMA))
    (tmp_path / "pl-dsl.toml").write_text('stage_modules = ["eval_second"]\n')
    base = TINY.replace("y: g_clean_acc", "y: f_second_acc")
    # The kind's defaults fill what is not written (n_test of shifted_gauss: 1000 in the schema).
    shifted = write_spec(tmp_path, "tiny", base + "eval_data: {kind: shifted_gauss, dim: 10, mean_shift: 1.0}\n")
    runs = json.loads(run_cli("runs", "--json", str(shifted), cwd=tmp_path).stdout)
    assert runs[0]["spec"]["eval_data"] == {**runs[0]["spec"]["eval_data"], "kind": "shifted_gauss", "dim": 10,
                                            "mean_shift": 1.0, "classes": None, "root": None}
    n_test = runs[0]["spec"]["eval_data"]["n_test"]
    assert isinstance(n_test, int) and n_test > 0
    ran = snakemake(tmp_path, "--config", f"experiments={shifted}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = rows_of(tmp_path / "results/tiny/results.csv")
    assert all(float(row["second_n_test"]) == n_test and 0.5 < float(row["f_second_acc"]) <= 1.0 for row in rows)
    # A field the kind does not take is located inside the section.
    wrong = write_spec(tmp_path, "wrong", base.replace("name: tiny", "name: wrong")
                       + "eval_data: {kind: shifted_gauss, dim: 10, classes: [1, 2]}\n")
    result = run_cli("validate", str(wrong), cwd=tmp_path)
    assert result.returncode == 1 and "eval_data.classes: classes applies to real data sets only" in result.stderr
    # Missing files of a real data set there are named, as for `data`, and Snakemake refuses to start.
    absent = write_spec(tmp_path, "absent", base.replace("name: tiny", "name: absent")
                        + f"eval_data: {{kind: mnist, root: {tmp_path / 'nowhere'}}}\n")
    hidden = {"HOME": str(tmp_path / "home"), "PL_DSL_DATA": ""}
    result = run_cli("validate", str(absent), cwd=tmp_path, env=hidden)
    assert result.returncode == 0 and "eval_data.kind: warning:" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
    refused = snakemake(tmp_path, "--config", f"experiments={absent}", "-n", env=hidden)
    assert refused.returncode == 1 and "eval_data.kind" in refused.stderr
