"""`pl-dsl doctor`: what this machine offers pl-dsl, for checking a set-up (a GPU node above all)
before a long run: the torch build and the CUDA devices it sees, threads, the workflow tools,
and which real data sets are on disk."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata


@dataclass
class Diagnosis:
    rows: list[tuple[str, str]] = field(default_factory=list)
    cuda_devices: list[str] = field(default_factory=list)
    cuda_problem: str = ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _driver() -> str:
    """The NVIDIA driver version from nvidia-smi, if there is one."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    return ", ".join(sorted(set(result.stdout.split()))) or f"nvidia-smi failed: {result.stderr.strip()}"


def diagnose() -> Diagnosis:
    """Everything `pl-dsl doctor` prints, and the CUDA devices found."""
    import torch

    from pl_dsl.science.datasets import REAL_DATASETS, DataNotFound, file_checks, locate

    report = Diagnosis()
    add = report.rows.append
    add(("pl-dsl", _version("pl-dsl")))
    add(("python", f"{platform.python_version()} ({sys.executable})"))
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only (no CUDA in this build)"
    add(("torch", f"{torch.__version__}, build: {build}"))
    add(("CPU threads", f"torch uses {torch.get_num_threads()}; {len(os.sched_getaffinity(0))} cores available "
                        f"to this process ({os.cpu_count()} on the machine)"))
    add(("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "(not set)")))
    if not torch.version.cuda:
        report.cuda_problem = ("this torch is the CPU build; install a CUDA build with `make setup TORCH=cuda` "
                               "(see docs/cluster.md)")
    elif not torch.cuda.is_available():
        report.cuda_problem = (f"this torch is built for CUDA {torch.version.cuda} but sees no device "
                               f"(driver: {_driver()}; a GPU node, a driver that supports that CUDA, and "
                               "CUDA_VISIBLE_DEVICES not empty are needed)")
    else:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            report.cuda_devices.append(f"cuda:{index} {props.name}, {props.total_memory / 2**30:.1f} GiB, "
                                       f"compute capability {props.major}.{props.minor}")
        add(("NVIDIA driver", _driver()))
    add(("CUDA devices", "; ".join(report.cuda_devices) or f"none: {report.cuda_problem}"))
    add(("snakemake", _version("snakemake")))
    add(("SLURM plugin", f"snakemake-executor-plugin-slurm {_version('snakemake-executor-plugin-slurm')}; "
                         f"sbatch {'found' if shutil.which('sbatch') else 'not on PATH'}"))
    for kind, info in REAL_DATASETS.items():
        try:
            files = locate(kind, None)
            checks = file_checks(kind, files)
            verdicts = sorted({verdict for _, verdict in checks})
            summary = (f"all {len(checks)} files match the canonical files (sha256)" if verdicts == ["matches the canonical file"]
                       else "; ".join(f"{name}: {verdict}" for name, verdict in checks))
            add((f"data: {kind}", f"found in {next(iter(files.values())).parent}; {summary}"))
        except DataNotFound:
            add((f"data: {kind}", f"not found ({info.title} specs cannot run here; `pl-dsl validate` says where "
                                  "it looks and how to provide it)"))
    return report
