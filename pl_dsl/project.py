"""The project a command runs in (the working directory): which stages of its own it adds to
pl-dsl's, named in one place that `pl-dsl` and the Snakefile both read:

    # pl-dsl.toml                       # or, in pyproject.toml:
    stage_modules = ["my_stages"]       # [tool.pl-dsl]
                                        # stage_modules = ["my_stages"]

Modules are imported from the project folder (or from anywhere on the Python path); each
declares a `STAGE`. `--config stage_modules=a,b` (Snakemake) and `--stage-modules` (CLI) still
override the file.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILES = ("pl-dsl.toml", "pyproject.toml")


class ProjectError(Exception):
    """The project's configuration cannot be used; the message says where and why."""


def configured_stage_modules(folder: Path | None = None) -> list[str]:
    """The stage modules the project names (pl-dsl.toml first, then pyproject.toml's
    [tool.pl-dsl]), or none."""
    folder = folder or Path.cwd()
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProjectError(f"{path}: {exc}") from None
        table = data if name == "pl-dsl.toml" else data.get("tool", {}).get("pl-dsl", {})
        modules = table.get("stage_modules")
        if modules is None:
            continue
        if isinstance(modules, str):
            modules = [m.strip() for m in modules.split(",") if m.strip()]
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise ProjectError(f"{path}: stage_modules must be a list of module names")
        return list(modules)
    return []


@cache
def project_registry(override: tuple[str, ...] | None = None) -> Registry:
    """pl-dsl's stages plus the project's own (`override`: modules named on the command line
    instead of the project file). Raises ProjectError when a module cannot be used."""
    from pl_dsl.stages import REGISTRY

    modules = list(override) if override is not None else configured_stage_modules()
    if not modules:
        return REGISTRY
    folder = str(Path.cwd())
    if folder not in sys.path:
        sys.path.append(folder)  # a project's stage modules live beside its specs
    try:
        return REGISTRY.extended(modules)
    except (ImportError, ValueError) as exc:
        raise ProjectError(f"stage_modules: {exc}") from None
