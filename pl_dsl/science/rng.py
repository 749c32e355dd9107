"""Random streams derived from a seed and a stage's identity, never from process history."""

from __future__ import annotations

from typing import Any

from pl_dsl.hashing import stable_hash


def stream_seed(seed: int, *identity: Any) -> int:
    """A 63-bit seed for one random stream, fixed by the run seed and what the stream is for."""
    return int(stable_hash([seed, list(identity)], 15), 16)
