"""Content hashes of JSON-able data: the identities of runs, units and batches."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, length: int = 10) -> str:
    """A short content hash; the same data always gives the same hash, in any process."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
