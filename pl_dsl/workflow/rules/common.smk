# Shared set-up of every rule: check the specs (the same check and messages as
# `pl-dsl validate`) before any job is planned, and build the batch plan.
import os
import sys
import threading

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError

from pl_dsl.engine.progress import SNAKEMAKE_PID_VARIABLE
from pl_dsl.engine.workflow import SnakemakeBridge
from pl_dsl.spec.bulk import kept_for_good


# Jobs run here, as children of this process (not on a cluster, and this is not a cluster job).
LOCAL = workflow.local_exec and not workflow.remote_exec


def local_cores():
    """The --cores of a local run, which the plan shares out as lanes and threads; None on a
    cluster and inside a cluster job (whose plan must be the submitting process's)."""
    if not LOCAL:
        return None
    try:
        return workflow.cores
    except WorkflowError:  # no --cores given (a dry run)
        return None


# `snakemake --report` after running any subset of experiments: the report shows what exists.
BRIDGE = SnakemakeBridge(config, workflow.basedir, reporting=any(arg.startswith("--report") for arg in sys.argv),
              check_store=workflow.is_main_process, cores=local_cores())
LAYOUT = BRIDGE.layout
# The plan lives until this process ends: out of the garbage collector's reach from here on.
kept_for_good()
# Local jobs stop when the Snakemake that started them is gone (pl_dsl.engine.progress). Cluster
# jobs need no watch: cancelling a cluster job ends every process in it.
if LOCAL:
    os.environ[SNAKEMAKE_PID_VARIABLE] = str(os.getpid())
else:
    os.environ.pop(SNAKEMAKE_PID_VARIABLE, None)


onstart:
    BRIDGE.write_plans()


def cancel_rate_timers():
    """Snakemake's job-rate limiter leaves a non-daemon 1 s timer after its last scheduling
    round, and Python waits for it at exit: every run ended up to a second late. The timer
    would only re-check an empty queue; cancelling it ends a finished run at once."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


onsuccess:
    cancel_rate_timers()


onerror:
    cancel_rate_timers()


wildcard_constraints:
    batch=LAYOUT.MANIFEST_NAME,
    experiment="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    plot="[A-Za-z0-9][A-Za-z0-9_.-]*",
    figure="[A-Za-z0-9][A-Za-z0-9_.-]*",
