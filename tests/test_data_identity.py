"""A stage never reads another data set's files: each kind's files are checked against its
published checksums when first read (cached by path, size and mtime), files that are another
kind's are an error naming the folder, what they are and what the spec asks for, files with no
published checksum are used with one located warning, and a real-data unit's identity holds the
checksum of the files it read, so results of other files are never reused."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pl_dsl.science import datasets
from pl_dsl.science.datasets import REAL_DATASETS, DataNotFound, content_sha256, identify, load_split
from pl_dsl.spec.config import resolve_data

from conftest import computed_units, run_cli, snakemake, write_spec
from test_datasets import IDX_NAMES, fake_mnist, write_idx_folder

SPEC = """name: {name}
data: {{kind: {kind}, n_train: 10, n_test: 4{root}}}
network: {{width: 8}}
training: {{steps: 3}}
attack: {{targets: balanced}}
seeds: [0, 1]
"""


@pytest.fixture(autouse=True)
def own_checksum_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps its checksums in a file of its own and starts with none in memory."""
    monkeypatch.setenv("PL_DSL_CHECKSUMS", str(tmp_path / "checksums.json"))
    monkeypatch.setattr(datasets, "_digests", {})


def publish(kind: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the files in folder as the published files of `kind` (for this process)."""
    checksums = tuple((name, content_sha256(next(folder.glob(f"{name}*")))) for name in IDX_NAMES)
    monkeypatch.setitem(REAL_DATASETS, kind, replace(REAL_DATASETS[kind], checksums=checksums))


def test_another_data_sets_files_are_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_folder(tmp_path / "data", fake_mnist(np.random.default_rng(0)), gz=True)
    publish("mnist", tmp_path / "data", monkeypatch)
    assert identify("mnist", str(tmp_path / "data")).matches == "mnist"
    assert load_split("mnist", str(tmp_path / "data"), "train")[0].shape == (30, 784)
    with pytest.raises(DataNotFound) as refused:
        load_split("fmnist", str(tmp_path / "data"), "train")  # both use the same file names
    message = str(refused.value)
    assert f"{tmp_path / 'data'} holds MNIST" in message and "asks for Fashion-MNIST (data.kind: fmnist)" in message


def test_checksums_are_cached_by_path_size_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_folder(tmp_path, fake_mnist(np.random.default_rng(1)), gz=False)
    reads: list[Path] = []
    original = datasets._read_bytes
    monkeypatch.setattr(datasets, "_read_bytes", lambda path: reads.append(path) or original(path))
    first = identify("mnist", str(tmp_path)).content
    assert len(reads) == 4
    monkeypatch.setattr(datasets, "_digests", {})  # a new process: only the cache file is left
    assert identify("mnist", str(tmp_path)).content == first and len(reads) == 4
    images = tmp_path / "train-images-idx3-ubyte"
    changed = bytearray(images.read_bytes())
    changed[-1] ^= 0xFF
    images.write_bytes(bytes(changed))
    os.utime(images, ns=(images.stat().st_atime_ns, images.stat().st_mtime_ns + 10**9))
    assert identify("mnist", str(tmp_path)).content != first and len(reads) == 5


def test_unpublished_files_run_with_one_located_warning(tmp_path: Path) -> None:
    write_idx_folder(tmp_path / "mine", fake_mnist(np.random.default_rng(2)), gz=True)
    spec = write_spec(tmp_path, "mine", SPEC.format(name="mine", kind="mnist", root=f", root: {tmp_path / 'mine'}"))
    checked = run_cli("validate", str(spec), cwd=tmp_path, env={"PL_DSL_CHECKSUMS": str(tmp_path / "c.json")})
    assert checked.returncode == 0, checked.stderr
    warnings = [line for line in checked.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, checked.stderr  # two runs, one folder: one warning
    assert warnings[0].startswith(f"{spec}:2:14: data.kind: warning: the files in {tmp_path / 'mine'} match no "
                                  "published checksum of MNIST")


def test_the_files_read_are_part_of_every_unit_identity(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    write_idx_folder(folder, fake_mnist(np.random.default_rng(3)), gz=False)
    before = resolve_data({"kind": "mnist", "root": str(folder)})
    assert before.content == identify("mnist", str(folder)).content
    assert "content" not in resolve_data({"kind": "shifted_gauss", "dim": 3}).__dict__ or \
        resolve_data({"kind": "shifted_gauss", "dim": 3}).content is None
    spec = write_spec(tmp_path, "mine", SPEC.format(name="mine", kind="mnist", root=f", root: {folder}"))
    env = {"PL_DSL_CHECKSUMS": str(tmp_path / "c.json")}
    ran = snakemake(tmp_path, "--config", f"experiments={spec}", env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert computed_units(tmp_path)["train_f"] == 2
    again = snakemake(tmp_path, "--config", f"experiments={spec}", env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # The same path now holds other files (the mistake fixed, or a new copy): nothing is reused.
    shutil.rmtree(folder)
    write_idx_folder(folder, fake_mnist(np.random.default_rng(4)), gz=False)
    assert resolve_data({"kind": "mnist", "root": str(folder)}).content != before.content
    rerun = snakemake(tmp_path, "--config", f"experiments={spec}", env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert computed_units(tmp_path)["train_f"] == 4  # two more: the runs of the new files


def test_real_mnist_files_asked_for_as_fmnist_are_refused(tmp_path: Path) -> None:
    """The reported mistake, with the canonical MNIST files: PL_DSL_DATA at a folder holding them."""
    try:
        mnist = identify("mnist", None)
    except DataNotFound:
        if os.environ.get("PL_DSL_REQUIRE_REAL_DATA") == "1":
            raise
        pytest.skip("no MNIST files here")
    if mnist.matches != "mnist":
        pytest.skip("the MNIST files here are not the canonical ones")
    shutil.copytree(mnist.folder, tmp_path / "data")
    spec = write_spec(tmp_path, "fm", SPEC.format(name="fm", kind="fmnist", root=""))
    env = {"PL_DSL_DATA": str(tmp_path / "data")}
    checked = run_cli("validate", str(spec), cwd=tmp_path, env=env)
    assert checked.returncode == 1
    assert (f"{spec}:2:14: data.kind: {tmp_path / 'data'} holds MNIST (its files match MNIST's published checksums), "
            "but the spec asks for Fashion-MNIST (data.kind: fmnist)") in checked.stderr
    refused = run_cli("run", str(spec), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "holds MNIST" in refused.stderr and not (tmp_path / "results").exists()
