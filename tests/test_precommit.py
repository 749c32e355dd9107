"""The pre-commit hooks other repositories use: their entry validates specs as pre-commit would run it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO


def test_hooks_validate_specs_as_pre_commit_runs_them() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {hook["id"] for hook in hooks} == {"pl-dsl-validate", "pl-dsl-validate-isolated"}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    valid = sorted((REPO / "tests/specs/valid").glob("*.yaml"))[:2]
    invalid = REPO / "tests/specs/invalid/bad_values.yaml"
    for hook in hooks:
        pattern = re.compile(hook["files"])
        assert all(pattern.search(str(path)) for path in [*valid, invalid])
        # pre-commit appends the changed files that match `files` to the entry.
        command = shlex.split(hook["entry"])
        ok = subprocess.run([*command, *map(str, valid)], capture_output=True, text=True, env=env)
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run([*command, str(valid[0]), str(invalid)], capture_output=True, text=True, env=env)
        assert bad.returncode == 1 and "bad_values.yaml:" in bad.stderr and "Traceback" not in bad.stderr
