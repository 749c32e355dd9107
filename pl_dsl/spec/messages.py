"""How spec problems are told: one error per place, `file:line:col: field.path: sentence`,
and the sentences for JSON-schema violations a user can act on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

from pl_dsl.spec.yamlpos import LocatedDocument, Mark
from pl_dsl.suggest import did_you_mean


@dataclass(frozen=True)
class SpecError:
    """One problem in a spec file, printed as `file:line:col: field.path: sentence`."""

    file: str
    line: int
    col: int
    field: str
    message: str
    level: str = "error"  # "warning": reported by `pl-dsl validate` without failing
    stops_runs: bool = False  # a warning that makes every job fail (missing data): snakemake refuses to start

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file  # line 0: not in a file
        message = f"warning: {self.message}" if self.level == "warning" else self.message
        return f"{where}: {self.field}: {message}" if self.field else f"{where}: {message}"



class SpecInvalid(Exception):
    """Raised by `load_experiment` with every error found."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors



def format_path(path: Iterable[Any]) -> str:
    """`("plots", 0, "y")` -> `plots[0].y`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in str(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else str(part)
    return text



class Checker:
    """Collects the errors and warnings of one file, checked against one schema."""

    def __init__(self, file: str, doc: LocatedDocument | None, schema: dict[str, Any]) -> None:
        self.file = file
        self.doc = doc
        self.schema = schema
        self.errors: list[SpecError] = []
        self.warnings: list[SpecError] = []

    def mark(self, path: tuple[Any, ...], key: bool = False) -> Mark:
        return self.doc.locate(path, key=key) if self.doc else Mark(1, 1)

    def add(self, path: tuple[Any, ...], message: str, *, key: bool = False, mark: Mark | None = None) -> None:
        mark = mark or self.mark(path, key)
        self.errors.append(SpecError(mark.file or self.file, mark.line, mark.col, format_path(path), message))

    def warn(self, path: tuple[Any, ...], message: str, *, stops_runs: bool = False) -> None:
        mark = self.mark(path)
        self.warnings.append(SpecError(mark.file or self.file, mark.line, mark.col, format_path(path), message, level="warning",
                                       stops_runs=stops_runs))


# JSON Schema's `integer` admits 20.0; sizes and counts written as floats break torch, so a
# spec's integers must be written as integers.
SpecValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))


def _describe_schema_error(error: jsonschema.ValidationError) -> list[tuple[tuple[Any, ...], str, bool]]:
    """Turn one jsonschema error into (path, sentence, points-at-key) triples a user can act on."""
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in schema.get("properties", {})]
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return [(path + (k,), f"unknown field{did_you_mean(str(k), allowed)}{hint}", True) for k in extra]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(path, f"missing required field '{missing}'{_required_hint(schema.get('properties', {}).get(missing))}",
                 bool(path))]  # at the section's own key
    if error.validator == "enum":
        options = ", ".join(map(str, error.validator_value))
        hint = did_you_mean(error.instance, map(str, error.validator_value)) if isinstance(error.instance, str) else ""
        return [(path, f"{error.instance!r} is not one of: {options}{hint}", False)]
    if error.validator == "type":
        hint = ""
        if error.validator_value == "integer" and isinstance(error.instance, float) and error.instance.is_integer():
            hint = f": write {int(error.instance)} (a whole number without a decimal point)"
        return [(path, f"expected {error.validator_value}, got {type(error.instance).__name__} "
                       f"{error.instance!r}{hint}", False)]
    if error.validator == "oneOf" and schema.get("description"):
        return [(path, f"{error.instance!r} does not fit: {schema['description']}", False)]
    if error.validator == "pattern":
        rule = schema.get("description") or f"must match {error.validator_value}"
        return [(path, f"{_short(error.instance)} is not allowed: {rule}", False)]
    if error.validator == "maxLength":
        return [(path, f"{_short(error.instance)} has {len(error.instance)} characters; at most "
                       f"{error.validator_value} are allowed", False)]
    if error.validator == "maximum" and "At most" in schema.get("description", ""):
        why = schema["description"].split("At most", 1)[1].split(":", 1)[-1].strip().rstrip(".")
        return [(path, f"{error.instance!r} is more than the largest allowed value, {error.validator_value}: {why}",
                 False)]
    return [(path, error.message, False)]


def _required_hint(field: Any) -> str:
    """What a missing required field takes, where its schema lists the choices: its own enum, or
    the enum of the first required field of a section (data: its kind)."""
    if not isinstance(field, dict):
        return ""
    if "enum" in field:
        return f": one of {', '.join(map(str, field['enum']))}"
    for name in field.get("required", []):
        inner = field.get("properties", {}).get(name, {})
        if "enum" in inner:
            return f" (a section with {name}: one of {', '.join(map(str, inner['enum']))})"
    return ""


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def schema_errors(checker: Checker, data: Any, schema: dict[str, Any], prefix: tuple[Any, ...] = (),
                  mark: Mark | None = None) -> None:
    """Every violation of `schema` by `data`, added to the checker at its place."""
    validator = SpecValidator(schema)
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        for path, message, at_key in _describe_schema_error(error):
            checker.add(prefix + path, message, key=at_key, mark=mark)


