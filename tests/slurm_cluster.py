"""A one-node SLURM cluster on this machine, from Debian's packages, for tests and benchmarks.

Needs root and the packages slurmctld, slurmd, slurm-client and munge. The configuration goes
to /etc/slurm/slurm.conf (the jobstep plugin drops SLURM_CONF before its inner srun), but an
existing configuration that this module did not write is never touched. Two fake GPUs (files
pointing at /dev/null) let `--gpus=1` jobs receive CUDA_VISIBLE_DEVICES. Every daemon started
is stopped by its PID on exit, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
GRES = Path("/etc/slurm/gres.conf")
MARK = "# written by pl-dsl tests (tests/slurm_cluster.py)"
PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "scancel")


def unavailable_reason() -> str | None:
    """Why a local cluster cannot be started here, or None when it can."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client munge)"
    if os.geteuid() != 0:
        return "the SLURM daemons must run as root"
    if CONF.exists() and MARK not in CONF.read_text():
        return f"{CONF} belongs to a real cluster; not touching it"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "the SLURM executor plugin is not installed (pip install -e '.[cluster]')"
    return None


def _config(folder: Path, host: str, memory: int, munge_socket: Path) -> str:
    return f"""{MARK}
ClusterName=pldsl
SlurmctldHost={host}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerParameters=batch_sched_delay=0
GresTypes=gpu
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextmanager
def local_slurm(folder: Path, timeout: float = 60) -> Iterator[None]:
    """Start munge, slurmctld and slurmd; yield once the node is idle; stop them all."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / "munge").chmod(0o755)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    for i in range(2):
        fake = folder / f"fakegpu{i}"
        if not fake.exists():
            fake.symlink_to("/dev/null")
    host = socket.gethostname().split(".")[0]
    probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
    memory = int(re.search(r"RealMemory=(\d+)", probe).group(1)) - 512  # type: ignore[union-attr]
    munge_socket = folder / "munge" / "munge.socket.2"
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(_config(folder, host, memory, munge_socket))
    GRES.write_text(f"{MARK}\nName=gpu File={folder}/fakegpu0\nName=gpu File={folder}/fakegpu1\n")
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        with open(folder / "daemons.log", "ab") as log:
            daemons.append(subprocess.Popen(
                ["munged", "-F", "--force", f"--socket={munge_socket}", f"--key-file={key}",
                 f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                 f"--seed-file={folder}/munged.seed"], stdout=log, stderr=log))
            deadline = time.time() + timeout
            while not munge_socket.exists() and time.time() < deadline:
                time.sleep(0.05)
            for daemon in ("slurmctld", "slurmd"):
                daemons.append(subprocess.Popen([daemon, "-D"], stdout=log, stderr=log))
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the test cluster did not become idle; logs in {folder}")
        yield
    finally:
        subprocess.run(["scancel", "--partition=debug"], capture_output=True)
        for process in reversed(daemons):
            process.terminate()
        for process in reversed(daemons):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for path in (CONF, GRES):
            if path.exists() and MARK in path.read_text():
                path.unlink()
