"""The store: atomic writes, file formats by suffix, and unit records.

Every file appears complete under its final name or not at all. A unit's files are written
first, its record (`record.json`: identity, inputs, seconds, metrics, each file's size, sha256
and time, and a digest of the record) last, so a unit is stored exactly when its record is
intact and its files match it (see `damage`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.errors import StageFailure, lookup


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; results are shared like any file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json_if_changed(path: str | Path, data: Any) -> None:
    """Write JSON atomically unless the file already holds exactly this data (keeps its mtime)."""
    try:
        if read_json(path) == json.loads(json.dumps(data, default=str)):
            return
    except (OSError, ValueError):
        pass
    write_json(path, data)


def _save_torch(value: Any, path: Path) -> None:
    import torch

    torch.save(value, path)


def _load_torch(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _save_npz(value: dict[str, Any], path: Path) -> None:
    import numpy as np

    arrays = {name: item.numpy() if hasattr(item, "numpy") else np.asarray(item) for name, item in value.items()}
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]


def _save_json(value: Any, path: Path) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True))


def _load_npz(path: Path) -> dict[str, Any]:
    import numpy as np

    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def _save_with(value: Callable[[Path], None], path: Path) -> None:
    value(path)  # a figure: the stage hands over a function that draws into the path


def _cannot_load(path: Path) -> Any:
    raise ValueError(f"{path} is written for people (a figure), not read back")


@dataclass(frozen=True)
class Format:
    """How a unit file of one suffix is written and read."""

    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]


FORMATS: dict[str, Format] = {
    ".pt": Format(_save_torch, _load_torch),
    ".json": Format(_save_json, read_json),
    ".npz": Format(_save_npz, _load_npz),
    ".png": Format(_save_with, _cannot_load),
    ".svg": Format(_save_with, _cannot_load),
}


def file_format(name: str) -> Format:
    """The format of a unit file, by its suffix; an unknown suffix is an error."""
    return lookup(FORMATS, Path(name).suffix, "file format")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_unit(folder: Path, files: dict[str, Any], record: dict[str, Any]) -> None:
    """Write a unit's files atomically, then its record with each file's size and sha256."""
    described = {}
    for name, value in files.items():
        path = folder / name
        with atomic_path(path) as tmp:
            file_format(name).save(value, tmp)
        stat = path.stat()
        described[name] = {"size": stat.st_size, "sha256": _sha256(path), "mtime_ns": stat.st_mtime_ns}
    content = {**record, "files": described}
    write_json(folder / "record.json", {**content, "digest": _record_digest(content)})


def _record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's content (without its digest): a hand-edited record is noticed."""
    text = json.dumps({k: v for k, v in record.items() if k != "digest"}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# A unit's status in its record: computed; computed with a network or perturbations that went
# non-finite, as the authors' code goes on with them (files and metrics as usual; `note` says
# which, and a run's metrics are then the numbers their script reports); or its computation
# diverged (no files; `note` says where). A unit whose input diverged is stored as diverged too,
# with that input's note. A run takes the gravest status of its units, in this order.
OK = "ok"
NONFINITE = "non-finite"
DIVERGED = "diverged"
STATUS_ORDER = (OK, NONFINITE, DIVERGED)


def read_record(folder: Path) -> dict[str, Any]:
    """A stored unit's record (records written before statuses existed count as ok)."""
    record: dict[str, Any] = read_json(folder / "record.json")
    record.setdefault("status", OK)
    return record


def damage(folder: Path, deep: bool = False) -> str | None:
    """What is wrong with a stored unit, or None when it is intact.

    Sizes are always compared with the record; the sha256 too when deep, or when a file's
    modification time is not the one recorded (so a file changed in place is caught cheaply).
    """
    try:
        record = read_json(folder / "record.json")
        files = record["files"]
    except FileNotFoundError:
        return f"{folder / 'record.json'} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder / 'record.json'} is damaged"
    if "digest" in record and record["digest"] != _record_digest(record):
        return f"{folder / 'record.json'} was edited after it was written (its digest does not match)"
    for name, info in files.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            return f"{path} is missing"
        if not isinstance(info, dict) or not {"size", "sha256"} <= set(info):
            return f"{folder / 'record.json'} is damaged"
        if stat.st_size != info["size"]:
            return f"{path} has {stat.st_size} bytes, its record says {info['size']}"
        if (deep or stat.st_mtime_ns != info.get("mtime_ns", stat.st_mtime_ns)) and _sha256(path) != info["sha256"]:
            return f"{path} was changed after it was written (its sha256 differs from the record)"
    return None


def is_stored(folder: Path) -> bool:
    """A unit is stored when its record and every file it lists are intact (see `damage`)."""
    return damage(folder) is None


def load_file(folder: Path, name: str, verify: bool = False) -> Any:
    """A unit file read back in its format; with verify, first checked against its recorded sha256."""
    path = folder / name
    if verify:
        expected = read_json(folder / "record.json")["files"][name]["sha256"]
        if _sha256(path) != expected:
            raise DamagedArtifact(f"{path} was changed after it was written (its sha256 differs from the record); "
                                  "rerun snakemake: it recomputes damaged units and what depends on them")
    return file_format(name).load(path)


class DamagedArtifact(StageFailure):
    """A stored file no longer matches its record."""
