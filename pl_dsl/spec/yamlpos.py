"""Safe YAML loading that remembers where every key and value stands in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a source file (`file`: another file than the one checked, for
    a value a composed spec takes from its base)."""

    line: int
    col: int
    file: str | None = None


class YamlDocumentError(Exception):
    """The file is not a YAML document pl-dsl can read; carries the position."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


@dataclass
class LocatedDocument:
    """The plain data of a YAML file plus the position of each value and key by path."""

    data: Any
    values: dict[Path, Mark]
    keys: dict[Path, Mark]
    # Problems that leave the document readable, reported with every other error of the spec:
    # a key given twice in one mapping (its last value is the one read).
    problems: list[YamlDocumentError] = field(default_factory=list)

    def locate(self, path: Path, *, key: bool = False) -> Mark:
        """Position of the value (or key) at path, else of its nearest existing ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Mark(1, 1))


# Bounds on what a spec may expand to: aliases can make a few lines stand for billions of values
# ("billion laughs"), or for a structure that contains itself.
MAX_SPEC_BYTES = 1_000_000
MAX_VALUES = 200_000
MAX_DEPTH = 40


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: `1e-3` is a float, not a string."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _reader_mark(exc: yaml.YAMLError, text: str) -> Mark:
    """Where a YAML error stands: its mark, or for a bad character its offset in the text."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return Mark(mark.line + 1, mark.column + 1)
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        before = text[:position]
        return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)
    return Mark(1, 1)


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        return f"not valid YAML: the file contains the control character U+{code:04X}, which YAML does not allow"
    problem = getattr(exc, "problem", None) or str(exc)
    if "'\\t'" in problem:  # YAML forbids tabs for indentation
        return f"not valid YAML: {problem}; YAML is indented with spaces, not tabs: replace the tab with spaces"
    return f"not valid YAML: {problem}"


def load_located(text: str) -> LocatedDocument:
    """Parse YAML with the safe loader; reject oversized or self-containing documents; record
    positions and keys given twice (`problems`). Every problem is a YamlDocumentError with a
    position."""
    if len(text) > MAX_SPEC_BYTES:
        raise YamlDocumentError(f"the file has {len(text)} characters; a spec may have at most {MAX_SPEC_BYTES}",
                                Mark(1, 1))
    try:
        root = yaml.compose(text, Loader=SpecLoader)
    except yaml.YAMLError as exc:
        raise YamlDocumentError(_yaml_message(exc), _reader_mark(exc, text)) from None
    except RecursionError:
        raise YamlDocumentError(f"not valid YAML for a spec: nested more than {MAX_DEPTH} levels deep",
                                Mark(1, 1)) from None
    values: dict[Path, Mark] = {}
    keys: dict[Path, Mark] = {}
    if root is None:
        return LocatedDocument(None, {(): Mark(1, 1)}, {})
    problems: list[YamlDocumentError] = []
    _walk(root, (), values, keys, problems)
    constructor = SpecLoader("")
    try:
        data = constructor.construct_document(root)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlDocumentError(
            f"not valid YAML: {exc.problem}", Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        ) from None
    return LocatedDocument(data, values, keys, problems)


def _walk(node: yaml.Node, path: Path, values: dict[Path, Mark], keys: dict[Path, Mark],
          problems: list[YamlDocumentError]) -> None:
    if len(path) > MAX_DEPTH:
        raise YamlDocumentError(f"nested more than {MAX_DEPTH} levels deep (or an alias refers to a value that "
                                "contains it)", _mark(node))
    if len(values) >= MAX_VALUES:
        raise YamlDocumentError(f"the document stands for more than {MAX_VALUES} values (YAML aliases that "
                                "repeat each other?)", _mark(node))
    values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                where = ".".join(str(p) for p in path + (key,))
                problems.append(YamlDocumentError(f"{where}: key {key!r} appears twice in this mapping",
                                                  _mark(key_node)))
            seen.add(key)
            keys[path + (key,)] = _mark(key_node)
            _walk(value_node, path + (key,), values, keys, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), values, keys, problems)
