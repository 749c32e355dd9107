"""Property-based tests: mutated specs (types, values, deletions, YAML syntax) never make
`pl-dsl validate` raise, and never take more than a few seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pl_dsl.spec.check import check_text

from conftest import REPO, run_cli

SEEDS = [REPO / "experiments/quickstart.yaml", *sorted((REPO / "tests/specs/valid").glob("*.yaml")),
         REPO / "experiments/paper-small/shifted_gauss_a.yaml"]
TEXTS = [path.read_text() for path in SEEDS]
SECONDS = 5.0

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**15, max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["gauss", "cifar10", "l2", "plateau", "seed", "training.lr", "g_clean_acc", "1e-3", "20.0"]),
    st.lists(st.integers(-5, 50), max_size=5), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, prefix + (index,))
    return found


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    """A valid spec with one to three of its values replaced, deleted, or an unknown key added."""
    data = yaml.safe_load(draw(st.sampled_from(TEXTS)))
    for _ in range(draw(st.integers(1, 3))):
        candidates = [p for p in paths(data) if p]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(leaves)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            known = st.sampled_from(["max_runs", "seeds", "sweep", "panels", "device", "plots", "claims", "figures"])
            parent[draw(st.one_of(known, st.text(min_size=1, max_size=10)))] = draw(leaves)
    return yaml.safe_dump(data, allow_unicode=True)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """A valid spec's text with a slice removed and YAML syntax characters (or control ones) inserted."""
    text = draw(st.sampled_from(TEXTS))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    pieces = st.sampled_from(list("[]{}:,-&*!|>'\"#%@`\t\n ") + ["\x00", "\x07", "é", "1e5", "&a ", "*a", "<<: "])
    inserted = "".join(draw(st.lists(pieces, max_size=8)))
    return text[:start] + inserted + text[end:]


def assert_checks_quietly(text: str) -> None:
    start = time.perf_counter()
    experiment, errors = check_text(text, "fuzzed.yaml")  # raising here is the failure
    assert time.perf_counter() - start < SECONDS
    assert (experiment is None) == bool(errors)
    for error in errors:
        assert error.line >= 1 and error.col >= 1 and error.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_data())
def test_mutated_values_never_crash_validate(text: str) -> None:
    assert_checks_quietly(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_text())
def test_mutated_yaml_never_crashes_validate(text: str) -> None:
    assert_checks_quietly(text)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(mutated_data(), mutated_text()))
def test_the_real_cli_answers_mutated_specs_without_a_traceback(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "fuzzed.yaml"
    spec.write_text(text, encoding="utf-8")
    result = run_cli("validate", str(spec))
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
