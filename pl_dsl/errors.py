"""Failures reported to the user as one sentence, not a traceback."""


class StageFailure(Exception):
    """A unit could not be computed for a reason the user can act on (divergence, device)."""
