"""Failures reported to the user as one sentence, not a traceback, and the table lookup that
turns an unknown kind (data set, norm, loss, ...) into such a failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class StageFailure(Exception):
    """A unit could not be computed for a reason the user can act on (divergence, device, data)."""


class UnknownKind(StageFailure, KeyError):
    """A name that no table of pl-dsl knows: never silently treated as some default kind."""

    def __str__(self) -> str:
        return str(self.args[0])


def lookup(table: Mapping[str, T], key: str, what: str) -> T:
    """table[key], or UnknownKind naming what was asked for and every known key."""
    try:
        return table[key]
    except KeyError:
        raise UnknownKind(f"unknown {what} {key!r}; known: {', '.join(map(str, table))}") from None
