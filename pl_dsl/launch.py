"""`pl-dsl run`: specs (with command-line overrides and multirun axes) checked, run through
Snakemake with one concise progress display, then their results and claims.

An override `FIELD=VALUE` (dotted path, YAML value) or a multirun axis `-m FIELD=a,b` makes a
derived experiment named `<name>+<hash of the changes>` (or `--name`): its spec, the base with
the changes applied, is saved as results/<derived name>/spec.yaml and run from there, so the
base experiment's results are never touched.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pl_dsl.engine.names import DERIVED_HEADER
from pl_dsl.engine.paths import Layout
from pl_dsl.hashing import stable_hash
from pl_dsl.spec.check import check_file, check_text
from pl_dsl.spec.compose import load_composed
from pl_dsl.spec.expand import Experiment
from pl_dsl.spec.messages import SpecError
from pl_dsl.spec.schema import field_paths, subschema
from pl_dsl.spec.sweeps import NOT_SWEEPABLE, set_path
from pl_dsl.spec.yamlpos import SpecLoader
from pl_dsl.suggest import did_you_mean

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry

# Top-level fields an override may set besides the run fields (which panels and sweeps may vary).
SETTABLE_TOP = ("seeds", "description", "max_runs")


def project_root() -> Path:
    """Where the workflow pl-dsl runs lies (Snakefile, rules/, report/): the working directory when
    it is a pl-dsl checkout, else the checkout this package is installed from (editable), else
    the workflow the package carries (pl_dsl/workflow), so that an installed pl-dsl runs anywhere."""
    package = Path(__file__).resolve().parent
    for candidate in (Path.cwd(), package.parent, package / "workflow"):
        if (candidate / "Snakefile").is_file() and (candidate / "rules").is_dir():
            return candidate
    raise UsageError(f"pl-dsl run needs its workflow (Snakefile and rules/), which the package carries in "
                     f"{package / 'workflow'}: reinstall pl-dsl (pip install pl-dsl)")


class UsageError(Exception):
    """A command-line argument pl-dsl cannot use; the message names it."""


@dataclass
class Change:
    """One command-line change: `FIELD=VALUE` (an override), `-m FIELD=a,b` (a multirun axis) or
    `~FIELD` (the spec's value removed, as Hydra writes it, so that its default or another field
    takes over: `~attack.eps attack.eps_per_coord=0.001`)."""

    argument: str
    path: str
    value: Any
    multirun: bool = False
    removes: bool = False


def is_change(item: str) -> bool:
    """Whether a command-line item is a change (FIELD=VALUE or ~FIELD) rather than a spec."""
    return "=" in item or item.startswith("~")


@dataclass
class Derived:
    """A spec to run: the file, and the changes that made it from its base (if any)."""

    file: Path
    base: Path | None = None
    changes: list[Change] = field(default_factory=list)


def parse_value(text: str) -> Any:
    """A command-line value read as YAML 1.2 (`0.1`, `1e-3`, `[0, 1]`, `balanced`, `true`)."""
    try:
        return yaml.load(text, Loader=SpecLoader) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_change(argument: str, schema: dict[str, Any], multirun: bool = False) -> Change:
    """`FIELD=VALUE` or `~FIELD` into a change; the field must exist (with a hint when it does not)."""
    if argument.startswith("~") and not multirun:
        path = argument[1:]
        if "=" in path or not path:
            raise UsageError(f"{argument!r}: expected ~FIELD (a dotted field path to remove, e.g. ~attack.eps)")
        if subschema(path, schema) is None and path not in SETTABLE_TOP:
            raise UsageError(f"{argument}: '{path}' is not a field of the spec"
                             f"{did_you_mean(path, [*field_paths(schema), *SETTABLE_TOP])}")
        return Change(argument, path, None, removes=True)
    path, sep, text = argument.partition("=")
    if not sep or not path:
        raise UsageError(f"{argument!r}: expected FIELD=VALUE (a dotted field path, e.g. training.lr=0.1)")
    top = path.split(".")[0]
    if multirun:
        if top in NOT_SWEEPABLE:
            raise UsageError(f"-m {argument}: '{path}' cannot be swept")
        values = parse_value(f"[{text}]")
        if not isinstance(values, list) or not values:
            raise UsageError(f"-m {argument}: expected FIELD=a,b,... (comma-separated values)")
        value: Any = values
    else:
        value = parse_value(text)
    known = path in SETTABLE_TOP or (top not in NOT_SWEEPABLE and subschema(path, schema) is not None)
    if not known:
        options = [*field_paths(schema), *SETTABLE_TOP]
        raise UsageError(f"{'-m ' if multirun else ''}{argument}: '{path}' is not a field of the spec"
                         f"{did_you_mean(path, options)}")
    field = subschema(path, schema)
    if field is not None and field.get("type") == "object":
        raise UsageError(f"{argument}: '{path}' is a section; set one of its fields")
    return Change(argument, path, value, multirun)


def _multirun(data: dict[str, Any], change: Change, spec: Path) -> str:
    """Sweep the spec over a -m axis: replacing its own sweep of that field, or adding an axis,
    which every plot that does not show it takes as its series (never a silent reduction).
    Returns what was done, for the run's output."""
    swept_in_panels = any(change.path in panel.get("vary", {}) or change.path in panel.get("vary", {}).get("zip", {})
                          for panel in data.get("panels", []))
    if swept_in_panels:
        raise UsageError(f"-m {change.argument}: '{change.path}' is a panel's factor in {spec}")
    sweep = data.setdefault("sweep", {})
    if change.path in sweep.get("zip", {}):
        raise UsageError(f"-m {change.argument}: '{change.path}' is swept in step with other fields (sweep.zip) in "
                         f"{spec}: change the spec, or set the zip's fields one by one")
    grid = sweep.setdefault("grid", {})
    before = grid.get(change.path)
    grid[change.path] = change.value
    if before is not None:
        return f"-m {change.argument}: replaces the spec's sweep over {change.path} ({before})"
    axes = [*grid, *sweep.get("zip", {}), *(["seed"] if len(data.get("seeds", [])) > 1 else [])]
    shown = []
    for plot in data.get("plots", []):
        if change.path in (plot.get("x"), plot.get("series")):
            continue
        old = plot.get("series")
        if old is not None:  # the old series is kept visible, as a band
            reduce = plot.get("reduce", "max")
            plan = {a: reduce for a in axes if a not in (plot["x"], change.path)} if isinstance(reduce, str) \
                else dict(reduce)
            if "band" in plan.values():
                raise UsageError(f"-m {change.argument}: plot '{plot['name']}' shows {old} as its series and already "
                                 f"has a band axis, so it cannot show {change.path} too; sweep {change.path} in a "
                                 "spec whose plot shows it")
            plot["reduce"] = {**plan, old: "band"}
        plot["series"] = change.path
        shown.append(f"plot {plot['name']}: series {change.path}" + (f", {old} as a band" if old else ""))
    figures = [figure["name"] for figure in data.get("figures", [])]
    return (f"-m {change.argument}: adds the axis {change.path}" + (f" ({'; '.join(shown)})" if shown else "")
            + (f"; figure(s) {', '.join(figures)} reduce it as their `reduce` says (max where it names nothing)"
               if figures else ""))


# A derived name spells its changes out while they take at most this many characters.
READABLE_CHANGES = 32
NAME_LIMIT = 100  # the schema's maxLength of a name


def derived_name(base: str, changes: list[Change]) -> str:
    """The name of a derived experiment: `<base>+<changes>+<hash>` where the changes are short
    (`quickstart+lr-0.1+3f2a9c`: the hash keeps two change sets that read alike apart), else
    `<base>+<hash>`."""
    digest = stable_hash([[c.path, c.value, c.multirun, c.removes] for c in changes], 8)
    readable = "+".join(_readable(change) for change in changes)
    name = f"{base}+{readable}+{digest[:6]}"
    return name if len(readable) <= READABLE_CHANGES and len(name) <= NAME_LIMIT else f"{base}+{digest}"


def _readable(change: Change) -> str:
    """A change in the characters a name allows: `lr-0.1`, `width-10-30` (-m), `no-eps` (~)."""
    leaf = change.path.split(".")[-1]
    if change.removes:
        return f"no-{leaf}"
    values = change.value if change.multirun else [change.value]
    text = re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(str(v) for v in values)).strip("-.")
    return f"{leaf}-{text}" if text else leaf


def _remove(data: dict[str, Any], change: Change, spec: Path) -> None:
    """Remove a field the spec (with its bases) gives."""
    *parents, leaf = change.path.split(".")
    target: Any = data
    for part in parents:
        target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict) or leaf not in target:
        raise UsageError(f"{change.argument}: {spec} gives no {change.path} to remove")
    del target[leaf]


def derive(spec: Path, changes: list[Change], layout: Layout, registry: Registry,
           name: str | None = None, scratch: Path | None = None) -> tuple[Path, list[SpecError], list[str]]:
    """Write the derived spec of `spec` with `changes` to results/<derived name>/spec.yaml (under
    `scratch` instead, for a dry run, which leaves nothing in results/) and check it. Errors at a
    changed field name its argument; the file is only written when valid. Also returns what
    each -m did (replaced the spec's sweep of a field, or added an axis)."""
    experiment, errors = check_file(spec, registry)
    if experiment is None:
        return spec, errors, []
    raw = load_composed(spec.read_text(encoding="utf-8"), str(spec)).data  # its bases merged in
    data = copy.deepcopy(raw)
    notes = []
    for change in changes:
        if change.multirun:
            notes.append(_multirun(data, change, spec))
        elif change.removes:
            _remove(data, change, spec)
        elif "." in change.path:
            set_path(data, change.path, change.value)
        else:
            data[change.path] = change.value
    data["name"] = name or derived_name(experiment.name, changes)
    data["description"] = (f"{experiment.spec.get('description') or experiment.name}; derived from {spec} with "
                           + " ".join(("-m " if c.multirun else "") + c.argument for c in changes))
    target = (scratch / data["name"] if scratch is not None else layout.experiment(data["name"])) / "spec.yaml"
    arguments = " ".join(("-m " if c.multirun else "") + c.argument for c in changes)
    text = (DERIVED_HEADER.format(spec=spec.resolve(), arguments=arguments) + "\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
    derived, errors = check_text(text, str(target), registry)
    if derived is None:
        return target, [_name_argument(error, changes) for error in errors], notes
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target, [], notes


def _name_argument(error: SpecError, changes: list[Change]) -> SpecError:
    """An error at a changed field (or at its section, as two fields that contradict each other),
    told as an error of the argument that changed it."""
    for change in changes:
        at_field = error.field == change.path or error.field.startswith((change.path + "[", change.path + ".")) \
            or f'["{change.path}"]' in error.field
        at_section = bool(error.field) and change.path.startswith(error.field + ".")
        if at_field or at_section:
            hint = "; ~FIELD removes a field the spec gives (e.g. ~attack.eps)" if at_section else ""
            return SpecError(f"argument {'-m ' if change.multirun else ''}{change.argument}", 0, 0, "",
                             f"{error.field}: {error.message}{hint}" if at_section else error.message)
    return error


def snakemake_command(files: list[Path], cores: int | None, profile: str | None, dry_run: bool, force: bool,
                      layout: Layout, extra: list[str]) -> list[str]:
    """The Snakemake command line that runs these specs."""
    command = [sys.executable, "-m", "snakemake", "-s", str(project_root() / "Snakefile"), "-d", os.getcwd()]
    if cores is not None:
        command += ["--cores", str(cores)]
    elif profile is None:
        command += ["--cores", "all"]
    if profile:
        command += ["--profile", profile]
    if dry_run:
        command.append("--dry-run")
    config = [f"experiments={','.join(str(f) for f in files)}"]
    if str(layout.root) != "results":
        config.append(f"results={layout.root}")
    if force:
        config.append("force=1")
    # Snakemake keeps only the last --config: the user's KEY=VALUE items join pl-dsl's instead.
    rest: list[str] = []
    taking = False
    for arg in extra:
        if arg in ("--config", "-C"):
            taking = True
        elif taking and not arg.startswith("-"):
            config.append(arg)
        else:
            taking = False
            rest.append(arg)
    return command + ["--config", *config, *rest]


@dataclass
class Tracker:
    """Which units of the planned experiments are stored, polled cheaply (a unit counts once its
    record exists), for the progress display."""

    layout: Layout
    pending: dict[tuple[str, str], float]  # (stage, key) -> estimated seconds
    total: dict[str, int]
    done: dict[str, int]
    runs: dict[str, list[list[tuple[str, str]]]]  # experiment -> each run's units
    started: float = field(default_factory=time.monotonic)
    done_seconds: float = 0.0
    reused: dict[str, int] = field(default_factory=dict)  # units per stage stored before the run
    estimates: list[tuple[float, float]] = field(default_factory=list)  # (elapsed, time left said) per line shown
    first_done: tuple[float, float] | None = None  # (elapsed, estimated seconds done) when a first unit was stored
    later: Callable[[], None] | None = None  # works out the units (see `of`)

    def reuse(self, planned: bool) -> str:
        """Per stage, units computed (or, planned, to compute) and units reused from the store."""
        verb = "to compute" if planned else "computed"
        self.ready()
        parts = [f"{stage} {self.total[stage] - self.reused[stage] if planned else self.done[stage] - self.reused[stage]} "
                 f"{verb}, {self.reused[stage]} reused" for stage in self.total]
        return "; ".join(parts)

    @staticmethod
    def of(experiments: list[Experiment], layout: Layout, registry: Registry) -> Tracker:
        """The tracker of these experiments' units; those stored now count as reused. Their units
        are worked out when first needed (at the first poll: a run's first poll comes once
        Snakemake has started, so that this and its planning go side by side)."""
        stored = stored_units(layout, registry.names)
        tracker = Tracker(layout, {}, {}, {}, {})
        tracker.later = lambda: tracker._units(experiments, registry, stored)
        return tracker

    def _units(self, experiments: list[Experiment], registry: Registry, stored: dict[str, set[str]]) -> None:
        from pl_dsl.engine.plan import UnitMemo, estimated_seconds, run_units

        total: dict[str, int] = {}
        for experiment in experiments:  # the units only: how the workflow batches them does not count here
            memo = UnitMemo()
            self.runs[experiment.name] = []
            for run in experiment.runs:
                units = run_units(run, registry, memo=memo)
                self.runs[experiment.name].append([(stage, unit.key) for stage, unit in units.items()])
                for stage, unit in units.items():
                    if (stage, unit.key) not in self.pending:
                        self.pending[(stage, unit.key)] = estimated_seconds(unit.cost)
                        total[stage] = total.get(stage, 0) + 1
        self.total.update({stage: total[stage] for stage in registry.names if stage in total})
        self.done.update(dict.fromkeys(self.total, 0))
        self.poll(stored)
        self.done_seconds = 0.0  # what was stored before does not count
        self.reused = dict(self.done)

    def ready(self) -> Tracker:
        """The tracker with its units worked out."""
        if self.later is not None:
            later, self.later = self.later, None
            later()
        return self

    def poll(self, folders: dict[str, set[str]] | None = None) -> None:
        """Count the pending units stored since the last poll (a unit is stored once its record is
        written; each stage's store folder is listed once, or given as `folders`)."""
        self.ready()
        folders = stored_units(self.layout, self.total) if folders is None else folders
        stored = [(stage, key) for stage, key in self.pending if key in folders.get(stage, ())
                  and (self.layout.unit(stage, key) / "record.json").exists()]
        for stage, key in stored:
            self.done[stage] += 1
            self.done_seconds += self.pending.pop((stage, key))

    def runs_done(self) -> tuple[int, int]:
        self.ready()
        finished = sum(all(unit not in self.pending for unit in run) for runs in self.runs.values() for run in runs)
        return finished, sum(len(runs) for runs in self.runs.values())

    def line(self) -> str:
        finished, runs = self.runs_done()
        stages = ", ".join(f"{stage} {self.done[stage]}/{count}" for stage, count in self.total.items())
        elapsed = time.monotonic() - self.started
        left = sum(self.pending.values())
        eta = ""
        if self.done_seconds > 0 and self.first_done is None:
            self.first_done = (elapsed, self.done_seconds)
        if self.first_done is not None and self.done_seconds > self.first_done[1] and left > 0:
            # the rate since the first unit was stored: Snakemake's start-up is not work done
            rate = (elapsed - self.first_done[0]) / (self.done_seconds - self.first_done[1])
            self.estimates.append((elapsed, rate * left))
            eta = f"; about {_duration(self.estimates[-1][1])} left"
        units = f"units {sum(self.done.values())}/{sum(self.total.values())}"
        return f"runs {finished}/{runs} done, {units} ({stages}); {_duration(elapsed)} elapsed{eta}"


    def accuracy(self) -> str:
        """How far off the time-left estimates were, told at the end of a run: the first one and the
        one halfway through, each against the time the run then really took ('' with none)."""
        if not self.estimates:
            return ""
        total = time.monotonic() - self.started
        picks = {"first": 0, **({"halfway": len(self.estimates) // 2} if len(self.estimates) > 1 else {})}
        said = []
        for label, index in picks.items():
            at, left = self.estimates[index]
            took = total - at
            said.append(f"{label}, at {_duration(at)}: about {_duration(left)} left, it took {_duration(took)} "
                        f"({took / left:.2f}x)")
        return "time-left estimates (the stage cost model, scaled by the rate since the first unit): " + "; ".join(said)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def locked_out(log: Path) -> bool:
    """Whether Snakemake refused to start because another Snakemake holds this folder's lock on
    the same outputs (a second run of one experiment at once)."""
    return log.exists() and "LockException" in log.read_text(encoding="utf-8", errors="replace")


def failure_lines(log: Path, tail: int = 12) -> list[str]:
    """What to show of Snakemake's log after a failure: pl-dsl's own messages (lines that start
    with "pl-dsl"), else the log's last lines."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    ours = [line for line in lines if line.startswith("pl-dsl")]
    return ours or lines[-tail:]


def stored_units(layout: Layout, stages: Iterable[str]) -> dict[str, set[str]]:
    """The unit folders in the store, per stage (each stage's folder listed once)."""
    return {stage: layout.unit_folders(stage) for stage in stages}


def run_workflow(command: list[str], log: Path, verbose: bool, tracker: Tracker | None, show: Any) -> int:
    """Run Snakemake; its own output goes to `log` (and to the terminal with verbose), while
    `show(line)` gets the progress line every second or so. Returns Snakemake's exit code.

    Snakemake runs in a session of its own, so that an interrupt (Ctrl-C, SIGINT or SIGTERM to
    pl-dsl) reaches it once, from here: it stops its jobs, every unit already stored stays, and
    this returns once it has finished (INTERRUPTED)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        # SIGINT too, and before Snakemake starts: a process started in the background by a
        # script inherits SIGINT ignored, and so would Snakemake and its jobs; a handled signal
        # is reset to the default in a new program, so they stop on SIGINT again.
        previous = {sent: signal.signal(sent, _interrupt) for sent in (signal.SIGINT, signal.SIGTERM)}
        process: subprocess.Popen[str] | None = None
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE if verbose else handle,
                                       stderr=subprocess.STDOUT, text=True, start_new_session=True)
            if verbose:
                assert process.stdout is not None
                for line in process.stdout:
                    handle.write(line)
                    sys.stdout.write(line)
            while process.poll() is None:
                if tracker is not None:
                    tracker.poll()
                    show(tracker.line())
                with contextlib.suppress(subprocess.TimeoutExpired):  # back as soon as Snakemake ends
                    process.wait(timeout=1.0)
        except KeyboardInterrupt:
            if process is not None:
                _stop(process)
            return INTERRUPTED
        finally:
            for sent, handler in previous.items():
                signal.signal(sent, handler)
            if tracker is not None:
                tracker.poll()
        return process.wait()


# pl-dsl run's exit status after an interrupt (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
# Seconds Snakemake gets to stop its jobs after the interrupt, then after SIGTERM.
STOP_SECONDS = (60.0, 10.0)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen[str]) -> None:
    """Interrupt Snakemake and its local jobs (its session's process group) as Ctrl-C in a
    terminal would, and wait for Snakemake (then SIGTERM, then SIGKILL). A job stops between two
    writes: what it stored stays, the units in flight are not stored."""
    for sent, seconds in ((signal.SIGINT, STOP_SECONDS[0]), (signal.SIGTERM, STOP_SECONDS[1])):
        try:
            os.killpg(process.pid, sent)
            process.wait(timeout=seconds)
            return
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class PlainProgress:
    """Progress without a terminal (a pipe, a log file, CI): the line printed when it first
    comes, then at most every `every` seconds, and the last one at the end."""

    def __init__(self, write: Any, every: float = 10.0) -> None:
        self.write = write
        self.every = every
        self.shown = -every
        self.last = ""

    def __call__(self, line: str) -> None:
        self.last = line
        now = time.monotonic()
        if now - self.shown >= self.every:
            self.shown = now
            self.write(line)
