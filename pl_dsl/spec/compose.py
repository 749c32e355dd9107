"""Spec composition: `extends: <path>` (relative to the spec's own file) takes a base spec and
changes only what differs. Mappings merge field by field; lists and scalars replace. A chain of
bases is allowed, a cycle is refused naming the chain. Every value keeps the file and line it
came from, so an error is located in the file that holds the offending line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pl_dsl.spec.yamlpos import LocatedDocument, Mark, YamlDocumentError, load_located
from pl_dsl.suggest import did_you_mean

EXTENDS = "extends"
# Bases deeper than this are refused (a chain this long is a mistake, not a design).
MAX_CHAIN = 20


def load_composed(text: str, file: str, chain: tuple[Path, ...] = ()) -> LocatedDocument:
    """The spec in `text` (from `file`) with its bases merged in; marks of values that come from a
    base carry that base's file. YamlDocumentError for a base that cannot be read, a cycle, or an
    `extends` that is not a path."""
    doc = load_located(text)
    if not isinstance(doc.data, dict) or EXTENDS not in doc.data:
        return doc
    here = Path(file).resolve() if file else Path.cwd()
    target = doc.data[EXTENDS]
    where = doc.values.get((EXTENDS,), Mark(1, 1))
    if not isinstance(target, str) or not target.strip():
        raise YamlDocumentError("extends: expected the path of a base spec (relative to this file)", where)
    base_path = (here.parent / target).resolve()
    seen = (*chain, here)
    if base_path in seen:
        names = " -> ".join(str(p) for p in (*seen, base_path))
        raise YamlDocumentError(f"extends: the bases form a cycle: {names}", where)
    if len(seen) > MAX_CHAIN:
        raise YamlDocumentError(f"extends: more than {MAX_CHAIN} bases in a chain", where)
    try:
        base_text = base_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        nearby = [p.name for p in base_path.parent.glob("*.y*ml")] if base_path.parent.is_dir() else []
        raise YamlDocumentError(f"extends: cannot read the base spec {base_path}: {getattr(exc, 'strerror', exc)}"
                                f"{did_you_mean(base_path.name, nearby)}", where) from None
    try:
        base = load_composed(base_text, str(base_path), seen)
    except YamlDocumentError as exc:  # located in the base: say so, at its own line
        raise YamlDocumentError(exc.message, replace(exc.mark, file=exc.mark.file or str(base_path))) from None
    if base.data is not None and not isinstance(base.data, dict):
        raise YamlDocumentError(f"extends: the base spec {base_path} is not a mapping of fields", where)
    base_file = str(base_path)
    data = merge(base.data or {}, {k: v for k, v in doc.data.items() if k != EXTENDS})
    values = {path: _in(mark, base_file) for path, mark in base.values.items()}
    keys = {path: _in(mark, base_file) for path, mark in base.keys.items()}
    values.update({path: mark for path, mark in doc.values.items() if path[:1] != (EXTENDS,)})
    keys.update({path: mark for path, mark in doc.keys.items() if path[:1] != (EXTENDS,)})
    in_base = [YamlDocumentError(e.message, _in(e.mark, base_file)) for e in base.problems]
    return LocatedDocument(data, values, keys, [*in_base, *doc.problems])


def _in(mark: Mark, file: str) -> Mark:
    return mark if mark.file else replace(mark, file=file)


def merge(base: Any, change: Any) -> Any:
    """`change` over `base`: mappings field by field, anything else replaced."""
    if isinstance(base, dict) and isinstance(change, dict):
        return {**base, **{key: merge(base.get(key), value) for key, value in change.items()}}
    return change
