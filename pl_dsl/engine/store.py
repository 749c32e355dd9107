"""The store: atomic writes, file formats by suffix, and unit records.

Every file appears complete under its final name or not at all. A unit's files are written
first, its record (`record.json`: identity, inputs, seconds, metrics, and each file's size
and sha256) last, so a unit is stored exactly when its record exists and its files have the
sizes the record gives.
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

from pl_dsl.errors import lookup


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
        described[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    write_json(folder / "record.json", {**record, "files": described})


def is_stored(folder: Path) -> bool:
    """A unit is stored when its record exists and every file it lists has the recorded size."""
    try:
        record = read_json(folder / "record.json")
        return all((folder / name).stat().st_size == info["size"] for name, info in record["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def load_file(folder: Path, name: str) -> Any:
    """A unit file read back in its format."""
    return file_format(name).load(folder / name)
