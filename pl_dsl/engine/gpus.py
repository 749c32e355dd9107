"""One GPU per job on a multi-GPU machine.

Snakemake's `--resources gpu=K` only counts: it runs at most K GPU jobs at once but does not
say which device each should use. Each job therefore claims a device with an exclusive lock
file (flock: released by the kernel even when the job is killed) and uses that device only.
Under SLURM the scheduler has already given the job its own devices (CUDA_VISIBLE_DEVICES),
so no lock is taken and the first visible device is used.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR_ENV = "PL_DSL_GPU_LOCK_DIR"


def visible_devices() -> list[str]:
    """The devices this process may use: CUDA_VISIBLE_DEVICES if set, else all CUDA devices."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def default_lock_dir() -> Path:
    """Machine-local folder for the locks (never a shared file system: locks are per machine)."""
    return Path(os.environ.get(LOCK_DIR_ENV, Path(tempfile.gettempdir()) / f"pl-dsl-gpu-locks-{os.getuid()}"))


@contextmanager
def claim_device(devices: list[str], lock_dir: Path | None = None, poll: float = 0.2) -> Iterator[int]:
    """Hold one of `devices` exclusively for the block; yields its index (torch's cuda:<index>).

    Waits while every device is held by another job.
    """
    if not devices:
        raise RuntimeError("no CUDA device is visible")
    if os.environ.get("SLURM_JOB_ID"):
        yield 0
        return
    folder = lock_dir or default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % len(devices)  # spread first attempts over the devices
    while True:
        for offset in range(len(devices)):
            index = (start + offset) % len(devices)
            handle = open(folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', devices[index])}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll)
