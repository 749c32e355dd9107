"""Warm jobs: one local server process imports torch once, and each job runs in a process forked
from it, instead of importing torch itself (about 2.5 CPU-s a job, more than a small job computes).

A job (`python -m pl_dsl.engine.jobs ...`) hands its command line, folder, environment, sys.path and
standard streams to the server for its environment (started by the first job that finds none); the
server forks a worker that runs the job exactly as the job's own process would, with pl_dsl
imported afresh from the job's sys.path. The job process waits for it, passes on the signals it gets
(an interrupt stops the worker as it would stop the job) and exits with its status; a job process
that dies takes its worker with it. The server exits after `IDLE_SECONDS` without jobs.

Off (every job imports torch itself) with `PL_DSL_WARM_JOBS=0`, inside a batch system's job (its
work stays in the allocation it was given), and where Linux's fork and descriptor passing are
missing. A job that cannot reach a server runs itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ENABLE_VARIABLE = "PL_DSL_WARM_JOBS"  # "0" (or "false", "no", "off"): every job imports torch itself
OFF_VALUES = ("0", "false", "no", "off")
FOLDER_VARIABLE = "PL_DSL_WARM_DIR"  # where the servers' sockets live (default: a folder of the user's in /tmp)
WORKER_VARIABLE = "PL_DSL_WARM_WORKER"  # set in a worker, so that the job it runs runs itself
IDLE_SECONDS = 120.0
START_SECONDS = 120.0  # how long a job waits for a server that is importing torch
PRELOADED = ("torch",)
JOB_MODULE = "pl_dsl.engine.jobs"
# A job of a batch system runs in the allocation it was given, never in a server outside it.
BATCH_JOB_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID", "SGE_TASK_ID")
# Variables that may change what importing torch does: a server serves only jobs that agree on them.
IMPORT_VARIABLE_PREFIXES = ("TORCH", "PYTORCH", "OMP_", "KMP_", "GOMP_", "MKL", "OPENBLAS", "CUDA", "NVIDIA",
                            "LD_", "PYTHON")
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def enabled() -> bool:
    """Whether this job should run in a warm worker."""
    return (os.environ.get(ENABLE_VARIABLE, "1").strip().lower() not in OFF_VALUES and WORKER_VARIABLE not in os.environ
            and sys.platform == "linux" and hasattr(socket, "send_fds")
            and not any(name in os.environ for name in BATCH_JOB_VARIABLES))


def server_address() -> Path:
    """The socket of the server for this interpreter, its sys.path, its torch and its environment."""
    torch = importlib.util.find_spec("torch")
    origin = torch.origin if torch and torch.origin else ""
    identity = {"python": sys.executable, "path": sys.path[1:], "torch": origin,
                "torch_mtime": os.stat(origin).st_mtime_ns if origin else 0,
                "environment": sorted((k, v) for k, v in os.environ.items() if k.startswith(IMPORT_VARIABLE_PREFIXES))}
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    folder = Path(os.environ.get(FOLDER_VARIABLE) or Path(tempfile.gettempdir()) / f"pl-dsl-warm-{os.getuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user")
    return folder / f"{key}.sock"


def delegate(argv: list[str]) -> int | None:
    """Run the job `argv` (jobs' arguments) in a warm worker and return its exit status; None when
    no worker could start it (the caller then runs the job itself)."""
    if not enabled():
        return None
    worker: int | None = None
    arrived: list[int] = []  # signals that came before the worker did

    def forward(number: int, _frame: object) -> None:
        if worker is None:
            arrived.append(number)
        else:
            _signal(worker, number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        connection = _connect(server_address())
    except OSError:
        connection = None
    started = b""
    if connection is not None:
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path}).encode()
        try:
            socket.send_fds(connection, [len(request).to_bytes(8, "big")], [0, 1, 2])
            connection.sendall(request)
            replies = connection.makefile("rb")
            started = replies.readline()
        except OSError:
            pass
    if connection is None or not started:  # no worker started it: this process runs it, unless told to stop
        if connection is not None:
            connection.close()
        if arrived:
            _die_of(arrived[0])
        for number, handler in previous.items():
            signal.signal(number, handler)
        return None
    with connection:
        worker = int(json.loads(started)["pid"])
        for pending in arrived:
            _signal(worker, pending)
        ended = replies.readline()
    if not ended:
        _signal(worker, signal.SIGKILL)
        print(f"pl-dsl error: the warm job server stopped while job process {worker} ran; run again "
              f"(or set {ENABLE_VARIABLE}=0)", file=sys.stderr)
        return 1
    status = int(json.loads(ended)["exit"])
    if status < 0:  # the worker died of a signal: so does this process, for Snakemake to see
        _die_of(-status)
    return status


def _die_of(number: int) -> None:
    """End this process by signal `number`, as a job process that got it and did not handle it."""
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os._exit(128 + number)  # a signal whose default is not to end the process


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except OSError:
        pass  # it has just ended


def _connect(address: Path) -> socket.socket | None:
    """A connection to the server at address, started if none answers; None if none comes up."""
    server = None
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(str(address))
            return connection
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
        if server is None:
            server = _start_server(address)
        elif server.poll() is not None and not _server_alive(address):
            return None  # it could not start (its log says why), and no other is starting
        time.sleep(0.05)
    return None


def _start_server(address: Path) -> subprocess.Popen[bytes]:
    code = f"import sys; sys.path[:] = {sys.path!r}; from pl_dsl.engine.warm import serve; serve({str(address)!r})"
    with open(address.with_suffix(".log"), "ab") as log:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def _server_alive(address: Path) -> bool:
    """Whether a server holds the address's lock (so is starting or serving)."""
    with open(address.with_suffix(".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def stop_servers(folder: Path) -> int:
    """Stop the servers whose sockets are in folder; how many. For when no job runs: a job running
    in a stopped server's worker finishes, but its job process can no longer learn its status."""
    stopped = 0
    for lock in folder.glob("*.lock"):
        if _server_alive(lock):
            try:
                os.kill(int(lock.read_text()), signal.SIGTERM)
                stopped += 1
            except (OSError, ValueError):
                pass
    return stopped


def serve(address: str) -> None:
    """Import torch, then fork a worker for each job that connects; exit after IDLE_SECONDS idle."""
    path = Path(address)
    lock = open(path.with_suffix(".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server has it
    os.ftruncate(lock.fileno(), 0)
    lock.write(str(os.getpid()))
    lock.flush()
    signal.signal(signal.SIGTERM, lambda _number, _frame: sys.exit(0))  # stop_servers: the socket goes too
    for name in PRELOADED:
        __import__(name)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    workers: dict[int, socket.socket] = {}
    idle_since = time.monotonic()
    try:
        while workers or time.monotonic() - idle_since < IDLE_SECONDS:
            if selector.select(timeout=0.05):
                _start_worker(listener, (selector, listener, lock), workers)
            while workers:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                _reply(workers.pop(pid), {"exit": os.waitstatus_to_exitcode(status)})
                idle_since = time.monotonic()
    finally:
        path.unlink(missing_ok=True)


def _start_worker(listener: socket.socket, held: tuple[Any, ...], workers: dict[int, socket.socket]) -> None:
    """Accept a job and fork its worker; a job that cannot be started here runs itself."""
    try:
        connection, _ = listener.accept()
    except OSError:
        return
    request = _receive(connection)
    if request is None:
        return
    fds, job = request
    # The worker starts with the job's signals blocked: one passed on at once waits until the job
    # can handle it, instead of being lost in the interpreter's after-fork hooks.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        pid = os.fork()
    except OSError:  # the job process sees its connection close before a pid, and runs the job itself
        pid = -1
    if pid == 0:  # the worker: nothing of the server's stays open in it
        try:
            for opened in (*held, *workers.values()):
                opened.close()
            _run_job(connection, fds, job)
        finally:
            os._exit(70)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    for fd in fds:
        os.close(fd)
    if pid < 0:
        connection.close()
        return
    workers[pid] = connection
    _reply(connection, {"pid": pid})


def _reply(connection: socket.socket, message: dict[str, int]) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the job process is gone; so is its worker
    if "exit" in message:
        connection.close()


def _receive(connection: socket.socket) -> tuple[list[int], dict[str, Any]] | None:
    """A job's standard streams and request; None (the connection closed) if it sent no whole one."""
    fds: list[int] = []
    try:
        connection.settimeout(5)
        header, fds, _, _ = socket.recv_fds(connection, 8, 3)
        header += _exactly(connection, 8 - len(header))
        request = json.loads(_exactly(connection, int.from_bytes(header, "big")))
        connection.settimeout(None)
        if len(fds) == 3:
            return fds, request
    except (OSError, ValueError):
        pass
    for fd in fds:
        os.close(fd)
    connection.close()
    return None


def _exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = connection.recv(size - len(data))
        if not more:
            raise ConnectionError("the job process went away")
        data += more
    return data


def _run_job(connection: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """In the worker: become the job's process (its streams, folder, environment, sys.path, a fresh
    pl_dsl) and run the job module as `python -m` would; die with the job process."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for reset in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(reset, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    sys.stdin = open(0, closefd=False, encoding=encoding)
    sys.stdout = open(1, "w", closefd=False, encoding=encoding, errors=errors)
    sys.stderr = open(2, "w", closefd=False, encoding=encoding, errors="backslashreplace", buffering=1)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[WORKER_VARIABLE] = "1"
    sys.path[:] = request["path"]
    for name in [name for name in sys.modules if name == "pl_dsl" or name.startswith("pl_dsl.")]:
        del sys.modules[name]
    threading.Thread(target=_die_with_job_process, args=(connection,), daemon=True).start()
    sys.argv = ["-m", *request["argv"]]
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)  # blocked since the fork
        runpy.run_module(JOB_MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:  # as the interpreter treats it
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:  # before the job could handle it: none of its units had started
        code = 130
    except BaseException:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _die_with_job_process(connection: socket.socket) -> None:
    """Kill this worker when its job process is gone (its end of the connection closed)."""
    try:
        while connection.recv(64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)
