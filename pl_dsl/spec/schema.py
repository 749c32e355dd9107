"""The experiment JSON Schema: loading, default filling and sub-schema lookup by field path.

The schema ships inside the package (pl_dsl/spec/experiment.schema.json; `schemas/` at the top
of the repository links to it for editors). It is the one place defaults are written.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent / "experiment.schema.json"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The experiment schema, shared by the CLI and the Snakefile."""
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def resolve_ref(schema: dict[str, Any], root: dict[str, Any] | None = None) -> dict[str, Any]:
    """Follow local `$ref`s (`#/...`) until a schema without one is reached."""
    root = root or load_schema()
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def fill_defaults(data: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of data with every missing property that declares a `default` filled in.

    Only defaults written on the property itself count, so override objects that merely
    reference the shared training schema stay sparse.
    """
    schema = resolve_ref(schema or load_schema())
    result = copy.deepcopy(data)
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if isinstance(result.get(name), dict) and "default" in prop:
            result[name] = fill_defaults(result[name], prop)
    return result


def defaults(section: str) -> dict[str, Any]:
    """The defaults the schema declares for the fields of one section (e.g. "data")."""
    schema = subschema(section) or {}
    return {name: copy.deepcopy(resolve_ref(prop)["default"]) for name, prop in schema.get("properties", {}).items()
            if "default" in resolve_ref(prop)}


@lru_cache(maxsize=1)
def field_paths() -> tuple[str, ...]:
    """Every dotted path to a field that can be set or swept (for 'did you mean' hints)."""
    paths: list[str] = []

    def walk(schema: dict[str, Any], prefix: str) -> None:
        for name, prop in resolve_ref(schema).get("properties", {}).items():
            prop = resolve_ref(prop)
            path = f"{prefix}{name}"
            if prop.get("type") == "object" and "properties" in prop:
                walk(prop, f"{path}.")
            else:
                paths.append(path)

    walk(load_schema(), "")
    return tuple(paths)


def subschema(path: str) -> dict[str, Any] | None:
    """The schema of the field at a dotted path, or None when no such field exists."""
    schema = resolve_ref(load_schema())
    for part in path.split("."):
        props = schema.get("properties", {})
        if part not in props:
            return None
        schema = resolve_ref(props[part])
    return schema
