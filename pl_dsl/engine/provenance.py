"""Where and with what a unit was computed: pl-dsl's version and git commit (when it runs from a
checkout), torch, the device, the host. Read once per job process and written into every unit's
record, so each run's metrics.json can say how its numbers were made."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    """Output of a git command in pl-dsl's checkout, or None outside one (an installed wheel)."""
    try:
        done = subprocess.run(["git", "-C", str(PACKAGE_DIR.parent), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@cache
def software() -> dict[str, Any]:
    """pl-dsl's version, its git commit and whether the checkout has uncommitted changes (None
    outside a checkout), Python and torch versions, and the host."""
    import torch

    try:
        version = metadata.version("pl-dsl")
    except metadata.PackageNotFoundError:
        version = "unknown"
    inside = _git("rev-parse", "--show-toplevel")
    in_checkout = inside is not None and Path(inside.strip()) == PACKAGE_DIR.parent
    commit = _git("rev-parse", "HEAD") if in_checkout else None
    status = _git("status", "--porcelain", "--untracked-files=no") if in_checkout else None
    return {"pl_dsl": version, "git_commit": commit.strip() if commit else None,
            "git_dirty": bool(status.strip()) if status is not None else None,
            "python": platform.python_version(), "torch": torch.__version__, "host": socket.gethostname()}


def device_name(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU's."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return platform.processor() or platform.machine() or "cpu"
