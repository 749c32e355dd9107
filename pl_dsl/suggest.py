"""'Did you mean' hints for names a user mistyped (fields, metrics, panels, experiments, config keys)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# A candidate is suggested when its likeness to the typed name is at least this.
CUTOFF = 0.8


def _is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)


def _one_swap(a: str, b: str) -> bool:
    """Whether b is a with two neighbouring letters swapped (widht for width)."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def likeness(typed: str, candidate: str) -> float:
    """How likely `candidate` is what was meant by `typed` (0 to 1): a near spelling (difflib's
    ratio), an abbreviation by initials (training.learning_rate for training.lr), or a shortened
    name (g_acc for g_clean_acc), or two swapped letters (tiyn for tiny); dotted paths must agree
    on everything but their last part for the abbreviations."""
    *typed_head, typed_leaf = typed.split(".")
    *head, leaf = candidate.split(".")
    score = difflib.SequenceMatcher(None, typed, candidate).ratio()
    if _one_swap(typed, candidate):
        score = max(score, 0.9)
    if typed_head == head and len(typed_leaf) >= 2:
        if "".join(part[0] for part in typed_leaf.split("_") if part) == leaf:
            score = max(score, 0.95)
        if len(typed_leaf) >= 3 and _is_subsequence(typed_leaf, leaf) and typed_leaf[0] == leaf[0]:
            score = max(score, 0.9)
    return score


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the likeliest known names (up to three about equally likely),
    or '' when none is close enough."""
    scored = sorted(((likeness(word, str(option)), str(option)) for option in set(options) if str(option) != word),
                    key=lambda pair: (-pair[0], pair[1]))
    if not scored or scored[0][0] < CUTOFF:
        return ""
    close = [name for score, name in scored[:3] if score >= max(CUTOFF, scored[0][0] - 0.05)]
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)"


def known(options: Iterable[str]) -> str:
    """Known names, sorted, comma-separated ('none' when there are none)."""
    return ", ".join(sorted(str(o) for o in options)) or "none"
