"""Entry points of the Snakemake rules: `python -m pl_dsl.engine.jobs batch|collect|report ...`.

Each prints a one-line error (no traceback) and exits 1 when the work cannot be done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.registry import Registry, stage_modules
from pl_dsl.engine.store import read_json, write_json
from pl_dsl.errors import StageFailure


def _log(handle: TextIO, message: str) -> None:
    handle.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    handle.flush()


def run_batch(plan_path: Path, manifest: Path, threads: int, layout: Layout, registry: Registry,
              log: TextIO, requested: dict[str, str] | None = None) -> None:
    """Compute every unit of a batch that the store lacks, then write the batch manifest.

    A batch that computes on CUDA first claims a GPU of its own (see engine.gpus). While it
    runs, its progress is reported (see engine.progress). The manifest also records the
    resources the job asked for and, on SLURM, what it was given.
    """
    import torch

    from pl_dsl.engine.gpus import claim_device, visible_devices
    from pl_dsl.engine.plan import Unit
    from pl_dsl.engine.progress import Progress
    from pl_dsl.engine.runner import UnitRunner, describe_runs

    torch.set_num_threads(max(1, threads))
    plan = read_json(plan_path)
    units = [Unit.from_json(data) for data in plan["units"]]
    for key in plan.get("recompute", []):  # damaged, or computed from a damaged unit
        stage = next(u.stage for u in units if u.key == key)
        shutil.rmtree(layout.unit(stage, key), ignore_errors=True)
        _log(log, f"recomputing {stage} {key}: it or a unit it was computed from was damaged")
    wants_cuda = any(u.device == "cuda" or (u.device == "auto" and torch.cuda.is_available()) for u in units)
    gpu = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "claimed": None}
    start = time.perf_counter()
    devices = visible_devices() if wants_cuda else []
    progress = Progress(log, layout.progress(plan["stage"], plan_path.stem), plan["stage"], plan_path.stem, len(units))
    try:
        with claim_device(devices) if wants_cuda else nullcontext(None) as cuda_index:
            if cuda_index is not None:
                gpu["claimed"] = devices[cuda_index]
                _log(log, f"using GPU {gpu['claimed']} (cuda:{cuda_index})")
            workspace = UnitRunner(layout, registry, cuda_index=cuda_index, progress=progress)
            records = []

            def done(unit: Unit, computed: bool, seconds: float) -> None:
                _log(log, f"{unit.stage} {unit.key} runs={','.join(unit.runs)} "
                          f"{'computed' if computed else 'reused'} in {seconds:.2f}s")
                records.append({"stage": unit.stage, "key": unit.key, "runs": unit.runs, "computed": computed})

            workspace.compute_all(units, done)
    finally:
        progress.close()
    for unit, note in workspace.diverged:
        message = f"run {describe_runs(unit)}: {note}; recorded as diverged, the other runs go on"
        _log(log, f"warning: {message}")
        print(f"pl-dsl warning: {message}", file=sys.stderr)
    write_json(manifest, {"stage": plan["stage"], "units": records, "gpu": gpu, "requested": requested or {},
                          "slurm": slurm_allocation(), "seconds": time.perf_counter() - start})


# Fields of `scontrol show job` recorded in a batch manifest: what SLURM granted the job.
SLURM_FIELDS = ("JobId", "Partition", "TimeLimit", "MinMemoryNode", "NumCPUs", "TRES")


def slurm_allocation() -> dict[str, str]:
    """What SLURM granted this job (empty outside SLURM). Read from `scontrol`, because the
    executor plugin's job step does not pass the allocation's variables on."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return {}
    try:
        shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True,
                               text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {"JobId": job_id}
    fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
    return {name: fields[name] for name in SLURM_FIELDS if name in fields}


def _batch(args: argparse.Namespace, layout: Layout, log: TextIO) -> None:
    from pl_dsl.project import project_registry

    registry = project_registry(tuple(stage_modules(args.stage_modules)))
    requested = dict(item.split("=", 1) for item in args.requested.split() if "=" in item)
    run_batch(Path(args.plan), Path(args.manifest), args.threads, layout, registry, log, requested)


def _collect(args: argparse.Namespace, layout: Layout, log: TextIO) -> None:
    from pl_dsl.report.results import collect

    count, not_ok = collect(read_json(args.plan), layout, Path(args.table), Path(args.runs))
    _log(log, f"collected {count} runs into {args.table}")
    for line in not_ok:
        _log(log, f"not ok: {line}")
    if not_ok:
        print(f"pl-dsl warning: {len(not_ok)} of {count} runs diverged or went non-finite; their rows in {args.table} "
              "say where:\n  " + "\n  ".join(not_ok), file=sys.stderr)


def _report(args: argparse.Namespace, layout: Layout, log: TextIO) -> None:
    from pl_dsl.report.jobs import report_job

    outputs = {name: Path(path) for name, path in (item.split("=", 1) for item in args.out)}
    _log(log, report_job(args.kind).run(read_json(args.input), Path(args.table), layout.runs_dir(args.experiment),
                                        outputs))


JOBS: dict[str, Callable[[argparse.Namespace, Layout, TextIO], None]] = {
    "batch": _batch, "collect": _collect, "report": _report}
# The jobs that import torch, so run warm (engine.warm); the table and report jobs do not need it.
WARM_JOBS = {"batch"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pl_dsl.engine.jobs")
    parser.add_argument("--results", default="results", help="results root")
    parser.add_argument("--log", required=True)
    parser.add_argument("--stage-modules", default="", help="modules declaring extra stages (comma-separated)")
    sub = parser.add_subparsers(dest="job", required=True)
    batch = sub.add_parser("batch")
    batch.add_argument("--plan", required=True)
    batch.add_argument("--manifest", required=True)
    batch.add_argument("--threads", type=int, default=1)
    batch.add_argument("--requested", default="", help="the job's resources as 'name=value ...', for the manifest")
    collect = sub.add_parser("collect")
    collect.add_argument("--plan", required=True)
    collect.add_argument("--table", required=True)
    collect.add_argument("--runs", required=True)
    report = sub.add_parser("report", help="a plot, a figure or the claims (see pl_dsl.report.jobs)")
    report.add_argument("--kind", required=True)
    report.add_argument("--input", required=True, help="what the job needs to know (a JSON file)")
    report.add_argument("--experiment", required=True)
    report.add_argument("--table", required=True)
    report.add_argument("--out", action="append", default=[], help="NAME=PATH of an output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = Layout(Path(args.results))
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a", encoding="utf-8") as log:
        try:
            JOBS[args.job](args, layout, log)
        except StageFailure as exc:
            _log(log, f"error: {exc}")
            print(f"pl-dsl error: {exc}", file=sys.stderr)
            return 1
        except FileNotFoundError as exc:
            message = (f"missing file {exc.filename}: an artifact this job reads was deleted; "
                       "rerun snakemake: it recomputes deleted units and what depends on them")
            _log(log, f"error: {message}")
            print(f"pl-dsl error: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # pl-dsl run or a terminal interrupted the workflow
            _log(log, "interrupted: the units finished so far are stored, the one in progress is not")
            return 130
        except Exception:
            # An unexpected failure is a bug: keep the traceback, in the log where it belongs.
            log.write(traceback.format_exc())
            print(f"pl-dsl error: internal error in the {args.job} job; traceback in {args.log}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    if _parser().parse_args().job in WARM_JOBS:
        from pl_dsl.engine.warm import delegate

        warm = delegate(sys.argv[1:])  # in a process forked from one that has imported torch
        if warm is not None:
            sys.exit(warm)
    code = main()
    # Everything the job writes is complete and closed by now (atomic renames, the log closed
    # in main). Skipping the interpreter's teardown saves 0.3-0.7 s per job after torch has
    # run its thread pools: a plain sys.exit spends it tearing down torch.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
