"""The experiment JSON Schema: assembled from the language and the sections the registered
stages declare (see `spec.sections`), default filling and sub-schema lookup by field path.

`pl_dsl/spec/experiment.schema.json` (linked from `schemas/` for editors) is the schema of
pl-dsl's own stages, written by `pl-dsl schema`; a test keeps it equal to the assembled one.
The schema is the one place defaults are written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

SCHEMA_PATH = Path(__file__).resolve().parent / "experiment.schema.json"
Schema = dict[str, Any]


def load_schema(registry: Registry | None = None) -> Schema:
    """The experiment schema of a registry (default: this project's, see `pl_dsl.project`)."""
    if registry is None:
        from pl_dsl.project import project_registry

        registry = project_registry()
    return registry.schema


def schema_text(schema: Schema) -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def resolve_ref(schema: Schema, root: Schema | None = None) -> Schema:
    """Follow local `$ref`s (`#/...`) until a schema without one is reached."""
    root = root if root is not None else load_schema()
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def fill_defaults(data: dict[str, Any], schema: Schema | None = None, root: Schema | None = None) -> dict[str, Any]:
    """Return a copy of data with every missing property that declares a `default` filled in.

    Only defaults written on the property itself count, so override objects that merely
    reference the shared training schema stay sparse.
    """
    root = root if root is not None else load_schema()
    schema = resolve_ref(schema if schema is not None else root, root)
    result = copy.deepcopy(data)
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if isinstance(result.get(name), dict) and "default" in prop:
            result[name] = fill_defaults(result[name], prop, root)
    return result


def defaults(section: str, root: Schema | None = None) -> dict[str, Any]:
    """The defaults the schema declares for the fields of one section (e.g. "data")."""
    root = root if root is not None else load_schema()
    schema = subschema(section, root) or {}
    return {name: copy.deepcopy(resolve_ref(prop, root)["default"]) for name, prop in schema.get("properties", {}).items()
            if "default" in resolve_ref(prop, root)}


def field_paths(root: Schema | None = None) -> tuple[str, ...]:
    """Every dotted path to a field that can be set or swept (for 'did you mean' hints)."""
    root = root if root is not None else load_schema()
    paths: list[str] = []

    def walk(schema: Schema, prefix: str) -> None:
        for name, prop in resolve_ref(schema, root).get("properties", {}).items():
            prop = resolve_ref(prop, root)
            path = f"{prefix}{name}"
            if prop.get("type") == "object" and "properties" in prop:
                walk(prop, f"{path}.")
            else:
                paths.append(path)

    walk(root, "")
    return tuple(paths)


def subschema(path: str, root: Schema | None = None) -> Schema | None:
    """The schema of the field at a dotted path, or None when no such field exists."""
    root = root if root is not None else load_schema()
    schema = resolve_ref(root, root)
    for part in path.split("."):
        props = schema.get("properties", {})
        if part not in props:
            return None
        schema = resolve_ref(props[part], root)
    return schema
