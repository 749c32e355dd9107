"""One way to name an experiment, for every command and for the workflow.

An item names specs, in this order: a spec file or a folder of specs (a path); else an
experiment of the results folder, by its name, through the spec its folder records (a derived
experiment's own spec.yaml included); else a spec under experiments/ of the project folder (the
current folder for the commands), by its file name or its `name:`, or a folder there such as
paper-small. An item found nowhere is an error that says where it was looked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import read_json
from pl_dsl.suggest import did_you_mean

SPEC_SUFFIXES = (".yaml", ".yml")
_NAME_LINE = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


class NotFound(Exception):
    """An item that names no spec and no experiment; the message says where it was looked for."""


def results_names(layout: Layout) -> list[str]:
    """The experiments of a results folder: its folders that record a spec or hold a table."""
    if not layout.root.is_dir():
        return []
    return sorted(folder.name for folder in layout.root.iterdir()
                  if folder.is_dir() and (layout.source(folder.name).exists() or layout.table(folder.name).exists()))


def recorded_spec(layout: Layout, name: str) -> Path | None:
    """The spec file an experiment's results folder records (source.json), if it still exists."""
    try:
        recorded = read_json(layout.source(name)).get("spec")
    except (OSError, ValueError):
        return None
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def spec_name(file: Path) -> str | None:
    """The `name:` a spec file gives (read from its text, without checking the spec)."""
    try:
        found = _NAME_LINE.search(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return found.group(1) if found else None


def _split(items: str | Iterable[str] | None) -> list[str]:
    """Items as given: a list, or one comma-separated string (`--config experiments=a,b`)."""
    if items is None:
        return []
    parts = items.split(",") if isinstance(items, str) else list(items)
    return [part.strip() for part in parts if part.strip()]


def _project_specs(root: Path) -> list[Path]:
    return sorted((root / "experiments").rglob("*.yaml"))


def _in_project(item: str, root: Path) -> list[Path]:
    """Specs under root/experiments/ named by item: a folder, a file stem, or a spec's `name:`."""
    folder = root / "experiments" / item
    if folder.is_dir():
        return sorted(folder.glob("*.yaml"))
    known = _project_specs(root)
    return [f for f in known if f.stem == item] or [f for f in known if spec_name(f) == item]


def _nowhere(item: str, layout: Layout, root: Path) -> NotFound:
    known = results_names(layout)
    folder = root / "experiments"
    project = sorted({f.stem for f in _project_specs(root)} | {name for f in _project_specs(root)
                                                               if (name := spec_name(f))})
    top = sorted(f.stem for f in folder.glob("*.yaml"))
    subfolders = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    there = ", ".join(top) + (f"; folders {', '.join(subfolders)}" if subfolders else "")
    where = ["not a spec file or folder",
             f"no experiment '{item}' in {layout.root}/ ({', '.join(known) if known else 'none there'})",
             f"no spec named '{item}' under {folder}/ ({there or 'none there'})"]
    looks_like_a_field = re.fullmatch(r"[A-Za-z_]+(\.[A-Za-z_0-9]+)+", item) and not item.endswith((".yaml", ".yml"))
    field = f"; to set the field {item}, write {item}=VALUE" if looks_like_a_field else ""
    return NotFound(f"'{item}' names nothing: {'; '.join(where)}{did_you_mean(item, known + project)}{field}")


def spec_files(items: str | Iterable[str] | None, layout: Layout, root: Path) -> list[Path]:
    """The spec files the items name (see the module's docstring), in order, each once. With no
    items: every experiments/*.yaml of root (subfolders run only when named)."""
    wanted = _split(items)
    if not wanted:
        return sorted((root / "experiments").glob("*.yaml"))
    files: list[Path] = []
    for item in wanted:
        files += _spec_files_of(item, layout, root)
    return list(dict.fromkeys(files))


def _spec_files_of(item: str, layout: Layout, root: Path) -> list[Path]:
    path = Path(item)
    for candidate in (path, root / path):
        if candidate.is_file() and candidate.suffix in SPEC_SUFFIXES:
            return [candidate]
        if candidate.is_dir() and list(candidate.glob("*.yaml")):
            return sorted(candidate.glob("*.yaml"))
    if path.suffix in SPEC_SUFFIXES:
        raise NotFound(f"no spec file {item} (looked in {Path.cwd()}{f' and {root}' if root != Path.cwd() else ''})")
    recorded = recorded_spec(layout, item)
    if recorded is not None:
        return [recorded]
    found = _in_project(item, root)
    if not found and layout.source(item).exists():
        raise NotFound(f"experiment '{item}' in {layout.root}/ was made by a spec that no longer exists "
                       f"({layout.source(item)} records it); give a spec file")
    if len(found) > 1 and not (root / "experiments" / item).is_dir():
        listed = ", ".join(str(f.relative_to(root)) for f in found)
        raise NotFound(f"'{item}' names several specs ({listed}); give the path of the one you mean, or a folder "
                       "such as paper-small")
    if found:
        return found
    raise _nowhere(item, layout, root)


def experiment_name(item: str, layout: Layout, root: Path) -> str:
    """The experiment an item names, for commands that read results: the name of a results
    folder, else the `name:` of the spec the item names (whose results may not exist yet)."""
    if Path(item).suffix not in SPEC_SUFFIXES and (layout.source(item).exists() or layout.table(item).exists()):
        return item
    files = _spec_files_of(item, layout, root)
    if len(files) != 1:
        raise NotFound(f"'{item}' names {len(files)} specs ({', '.join(f.name for f in files)}); name one experiment")
    name = spec_name(files[0])
    if name is None:
        raise NotFound(f"{files[0]} gives no `name:`; `pl-dsl validate {files[0]}` says what is wrong")
    return name


# The first line of a derived experiment's spec.yaml (pl-dsl run with FIELD=VALUE or -m): its base
# spec and the arguments that changed it.
DERIVED_HEADER = "# Derived by `pl-dsl run` from {spec} with: {arguments}"
_DERIVED_PREFIX = DERIVED_HEADER.split("{spec}")[0]


def derivation(spec_file: Path) -> str | None:
    """'BASE + ARGUMENTS' of a derived experiment's spec.yaml (None for a spec of one's own), so
    that every command shows what a derived name stands for."""
    try:
        with open(spec_file, encoding="utf-8") as handle:
            first = handle.readline().rstrip("\n")
    except OSError:
        return None
    if not first.startswith(_DERIVED_PREFIX) or " with: " not in first:
        return None
    base, arguments = first[len(_DERIVED_PREFIX):].split(" with: ", 1)
    return f"{Path(base).name} + {arguments}"
