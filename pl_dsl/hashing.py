"""Content hashes of JSON-able data: the identities of runs, units and batches."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any


class Encoded(str):
    """JSON data already encoded as `stable_hash` encodes it: a part shared by many hashed
    objects is encoded once (see `encoded`) and placed as it is, as a value of the hashed dict."""


def encoded(obj: Any) -> Encoded:
    """`obj` encoded once, to be placed in objects passed to `stable_hash`."""
    return Encoded(dumps(obj))


def encoded_dict(parts: dict[str, Encoded]) -> Encoded:
    """A dict of encoded values, encoded (without encoding its values again)."""
    return Encoded("{" + ",".join([f"{_key(key)}:{parts[key]}" for key in sorted(parts)]) + "}")


@functools.lru_cache(maxsize=1024)
def _key(key: str) -> str:
    return dumps(key)


def dumps(obj: Any) -> str:
    """JSON as stable_hash encodes it (keys sorted, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


# Stands for an Encoded value while the rest of its dict is encoded (json.dumps writes the NULs
# as \u0000, which no encoded text of a str holds unescaped).
_PLACE = "\0encoded{}\0"


def _encode(obj: Any) -> str:
    """The encoding of `obj` with its `Encoded` values placed as they are: the same text
    json.dumps gives for the data they encode (keys sorted at every level, no spaces)."""
    if type(obj) is not dict:
        return dumps(obj)
    parts = [key for key, value in obj.items() if isinstance(value, Encoded)]
    if not parts:
        return dumps(obj)
    if len(parts) == len(obj) and all(type(key) is str for key in parts):
        return encoded_dict(obj)
    text = dumps({**obj, **{key: _PLACE.format(i) for i, key in enumerate(parts)}})
    for i, key in enumerate(parts):
        text = text.replace(dumps(_PLACE.format(i)), obj[key], 1)
    return text


def stable_hash(obj: Any, length: int = 10) -> str:
    """A short content hash; the same data always gives the same hash, in any process."""
    return hashlib.sha256(_encode(obj).encode()).hexdigest()[:length]
