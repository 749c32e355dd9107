"""What every command shares: consoles, the error a command stops with, common options, the registry."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

T = TypeVar("T")
FC = TypeVar("FC", bound=Callable[..., Any])


# What each exit code of a pl-dsl command means (docs/spec.md, "Exit codes", says the same; tests/
# test_cli_validate.py keeps them equal).
EXIT_CODES = {
    0: "done",
    1: "what the command read is wrong or missing, or the work failed",
    2: "the command line is wrong",
    130: "interrupted",
}


class CommandError(Exception):
    """Why a command stops: the main group prints `pl-dsl CMD: message` (the message alone when
    bare, e.g. located spec errors) and exits with code; with param, it is a usage error of that
    option, shown by click with the usage line (exit 2)."""

    def __init__(self, message: str, code: int = 1, param: str | None = None, bare: bool = False) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.bare = message, code, param, bare


class Main(click.Group):
    """The `pl-dsl` group: turns a CommandError raised by any command into its message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError as exc:
            if exc.param is not None:
                raise click.BadParameter(exc.message, param_hint=exc.param) from None
            command = ctx.invoked_subcommand or ctx.info_name
            console(err=True).print(exc.message if exc.bare else f"pl-dsl {command}: {exc.message}", markup=False)
            sys.exit(exc.code)


def console(err: bool = False) -> Console:
    """A console whose messages stay on one line (so `file:line:col` stays greppable); piped
    output gets a generous width instead of rich's 80-column guess."""
    made = Console(stderr=err, soft_wrap=True, highlight=False)
    if not made.is_terminal:
        made.width = 200
    return made


def cell(text: str) -> str:
    """A table cell for people: numbers to 4 significant digits (the CSV keeps full precision)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "." not in text else f"{value:.4g}"


def fail_with(errors: list[Any], code: int = 1) -> NoReturn:
    """Stop with located spec errors, one per line as `pl-dsl validate` prints them."""
    raise CommandError("\n".join(str(error) for error in errors), code, bare=True)


def named(resolve: Callable[[], T]) -> T:
    """What a resolver of engine.names returns; where it looked when it finds nothing (exit 2: an
    argument that names nothing is a mistake of the command line)."""
    from pl_dsl.engine.names import NotFound

    try:
        return resolve()
    except NotFound as exc:
        raise CommandError(str(exc), 2) from None


def registry(stage_modules: str | None) -> Registry:
    """pl-dsl's stages plus the project's own (see pl_dsl.project), or those named here instead."""
    from pl_dsl.engine.registry import stage_modules as module_list
    from pl_dsl.project import ProjectError, project_registry

    try:
        return project_registry(tuple(module_list(stage_modules)) if stage_modules is not None else None)
    except ProjectError as exc:
        raise CommandError(str(exc), 2) from None


STAGE_MODULES = click.option("--stage-modules", default=None,
                             help="Modules declaring stages of your own (comma-separated), instead of those the "
                                  "project names in pl-dsl.toml or pyproject.toml [tool.pl-dsl].")


def results_option(help_text: str = "Results root.") -> Callable[[FC], FC]:
    """The --results option (the results root) every command that reads or writes results takes."""
    return click.option("--results", "results_root", default="results", show_default=True,
                        type=click.Path(file_okay=False), help=help_text)


def no_experiments(root: Path) -> str:
    """What list and status say where a results root holds nothing, naming the folder looked in."""
    return (f"no experiments in {root.resolve()}/ yet (pl-dsl reads {root}/ in the folder it runs in; --results DIR "
            "names another): `pl-dsl run SPEC` makes one")
