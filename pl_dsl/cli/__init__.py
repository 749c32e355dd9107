"""The `pl-dsl` command. Each family of commands is a module of this package: its click commands
parse options and call functions that return data (or raise CommandError with the exit code);
pl_dsl.cli.render turns that data into tables and lines."""

from __future__ import annotations

import click

from pl_dsl.cli.common import Main
from pl_dsl.cli.doctor import doctor
from pl_dsl.cli.results import compare, list_experiments, results
from pl_dsl.cli.run import run
from pl_dsl.cli.specs import runs, schema, show, validate
from pl_dsl.cli.store import export, gc, remove_experiments, status


@click.group(cls=Main)
@click.version_option(package_name="pl-dsl")
def main() -> None:
    """pl-dsl: declarative perturbation-learning experiments (run them with `snakemake --cores N`)."""


for command in (validate, run, show, schema, runs, results, status, gc, remove_experiments, export, list_experiments,
                compare, doctor):
    main.add_command(command)
