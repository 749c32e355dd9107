"""`pl-dsl doctor`: what this machine offers pl-dsl, and its measured training rate."""

from __future__ import annotations

import click

from pl_dsl.cli import render
from pl_dsl.cli.common import CommandError, console


@click.command()
@click.option("--require-cuda", is_flag=True, help="Exit 1 unless PyTorch sees a CUDA device (for GPU nodes).")
@click.option("--calibrate", is_flag=True,
              help="Measure the training throughput of this machine's CPU (one core) and GPU (one net, and nets "
                   "stacked) and store it for runtime requests and `pl-dsl runs --device` (about half a minute).")
def doctor(require_cuda: bool, calibrate: bool) -> None:
    """What this machine offers pl-dsl: Python, the torch build and the devices it sees (with the CUDA
    version), threads, Snakemake and the SLURM plugin, and the real data files found."""
    from pl_dsl.doctor import diagnose

    report = diagnose()
    console().print(render.doctor(report.rows))
    if calibrate:
        from pl_dsl.engine import calibration

        render.calibration(console(), calibration.calibrate(), calibration.calibration_file())
    if require_cuda and not report.cuda_devices:
        raise CommandError(f"no CUDA device: {report.cuda_problem}")
