"""Safe YAML loading that remembers where every key and value stands in the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[Any, ...]


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a source file."""

    line: int
    col: int


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


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str) -> LocatedDocument:
    """Parse YAML with the safe loader; reject duplicate keys; record positions."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlDocumentError(f"not valid YAML: {exc.problem or exc}", Mark(line, col)) from None
    values: dict[Path, Mark] = {}
    keys: dict[Path, Mark] = {}
    if root is None:
        return LocatedDocument(None, {(): Mark(1, 1)}, {})
    _walk(root, (), values, keys)
    constructor = yaml.SafeLoader("")
    try:
        data = constructor.construct_document(root)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlDocumentError(
            f"not valid YAML: {exc.problem}", Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        ) from None
    return LocatedDocument(data, values, keys)


def _walk(node: yaml.Node, path: Path, values: dict[Path, Mark], keys: dict[Path, Mark]) -> None:
    values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                where = ".".join(str(p) for p in path + (key,))
                raise YamlDocumentError(f"{where}: key {key!r} appears twice in this mapping", _mark(key_node))
            seen.add(key)
            keys[path + (key,)] = _mark(key_node)
            _walk(value_node, path + (key,), values, keys)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), values, keys)
