"""``flyte wandb ...``: explain the configuration, print a task's link, run the demo.

Flyte finds this group through the ``flyte.plugins.cli.commands`` entry point named ``wandb``.
Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ._errors import WandbConfigError

__all__ = ["parse_context", "wandb_group"]

F = TypeVar("F", bound=Callable[..., Any])

_USAGE_ERROR = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(_USAGE_ERROR)


def _clear_errors(fn: F) -> F:
    """Turn configuration errors into one line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WandbConfigError as exc:
            _fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _known_context_keys() -> frozenset[str]:
    from ._codec import RUN_IDENTITY_KEYS, SWEEP_IDENTITY_KEYS
    from ._settings import RUN, SWEEP

    return frozenset(
        {RUN.prefix + f for f in RUN.fields}
        | {SWEEP.prefix + f for f in SWEEP.fields}
        | set(RUN_IDENTITY_KEYS.values())
        | set(SWEEP_IDENTITY_KEYS.values())
    )


def parse_context(items: Iterable[str]) -> dict[str, str]:
    """Parse ``KEY=VALUE`` options into a ``custom_context`` mapping.

    Keys are ``custom_context`` keys (``wandb_project``, ``wandb_sweep_method``, ``_wandb_run_id``);
    a bare field name is a run field (``project`` means ``wandb_project``). Values are given the
    way they travel in ``custom_context``: strings verbatim, lists, dicts and booleans as JSON.

    Example:
        >>> parse_context(["project=demo", "wandb_tags=[\\"a\\"]"])
        {'wandb_project': 'demo', 'wandb_tags': '["a"]'}
    """
    known = _known_context_keys()
    context: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WandbConfigError("--context", item, "command line", "KEY=VALUE, e.g. wandb_project=demo")
        if key not in known and "wandb_" + key in known:
            key = "wandb_" + key
        if key not in known:
            raise WandbConfigError(
                "--context",
                item,
                "command line",
                "a custom_context key such as wandb_project, wandb_run_mode",
            )
        context[key] = value
    return context


def _check_context(context: Mapping[str, str]) -> None:
    from ._codec import decode_context

    # Decoding validates every value, so a bad one is reported before anything else happens.
    decode_context(context)


@click.group(name="wandb")
def wandb_group() -> None:
    """Weights & Biases for Flyte: inspect the configuration and the links.

    \b
    flyte wandb explain          where every W&B setting comes from, here and now
    flyte wandb link ...         the W&B link a task would get
    flyte wandb check            will W&B work for a task? (mode, credentials, server)
    flyte wandb demo             run a local workflow with W&B in offline mode
    flyte wandb report RUN...    a local run's charts, or several runs compared, as one HTML page
    """


_context_option = click.option(
    "--context",
    "-c",
    "context_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A custom_context entry, as a parent task or flyte.with_runcontext would pass it "
    "(repeatable), e.g. -c wandb_project=demo -c wandb_run_mode=new.",
)


@wandb_group.command(name="explain")
@_context_option
@click.option("--sweep", is_flag=True, help="Explain the sweep settings instead of the run settings.")
@_clear_errors
def explain_command(context_items: tuple[str, ...], sweep: bool) -> None:
    """Print where every W&B setting comes from: defaults, config file, environment, context.

    The table is what the links and wandb.init() of a task would use, given the environment of
    this shell and the custom_context entries passed with --context.
    """
    from ._layers import explain

    context = parse_context(context_items)
    _check_context(context)
    click.echo(str(explain("sweep" if sweep else "run", context=context)))


@wandb_group.command(name="link")
@click.option("--run-name", required=True, help="The Flyte run name, e.g. r3x9k2.")
@click.option("--action-name", required=True, help="The Flyte action name, e.g. a0.")
@_context_option
@click.option("--project", default=None, help="W&B project, as given to @wandb_init / Wandb(...).")
@click.option("--entity", default=None, help="W&B entity (user or team).")
@click.option("--host", default=None, help="W&B web address, e.g. https://wandb.example.com.")
@click.option("--id", "run_id", default=None, help="A fixed W&B run id (or sweep id with --sweep).")
@click.option("--run-mode", default=None, metavar="auto|new|shared", help="The task's run mode.")
@click.option("--rank-scope", default=None, metavar="global|worker", help="The task's rank scope.")
@click.option("--sweep", is_flag=True, help="Print the sweep link (WandbSweep) instead of the run link.")
@_clear_errors
def link_command(
    run_name: str,
    action_name: str,
    context_items: tuple[str, ...],
    project: str | None,
    entity: str | None,
    host: str | None,
    run_id: str | None,
    run_mode: str | None,
    rank_scope: str | None,
    sweep: bool,
) -> None:
    """Print the W&B link Flyte would show for a task.

    The options are the task's own settings (its @wandb_init arguments); everything else comes
    from the environment of this shell, the config file and --context.
    """
    from ._settings import RUN

    context = parse_context(context_items)
    _check_context(context)
    given = {
        "project": project,
        "entity": entity,
        "host": host,
        "run_mode": run_mode,
        "rank_scope": rank_scope,
    }
    origins = {name: "option --" + name.replace("_", "-") for name in given}
    if not sweep:
        given["id"] = run_id
        origins["id"] = "option --id"
    values = RUN.validate({k: v for k, v in given.items() if v is not None}, origins)
    link: Any
    if sweep:
        if values.keys() & {"run_mode", "rank_scope"}:
            _fail("--run-mode and --rank-scope apply to run links, not to --sweep")
        from ._link import WandbSweep

        link = WandbSweep(**values, id=run_id)
    else:
        from ._link import Wandb

        link = Wandb(**values)
    url = link.get_link(run_name, "", "", context, "", action_name, "")
    if not url:
        click.echo("(no link: W&B mode is 'disabled', so the task has no run)", err=True)
        return
    click.echo(url)


@wandb_group.command(name="check")
@click.option("--task", "task_spec", default=None, metavar="FILE:TASK", help="Check as this task would run.")
@click.option(
    "--online", is_flag=True, help="Also ask the server whether the entity and project are accessible."
)
@_context_option
@_clear_errors
def check_command(task_spec: str | None, online: bool, context_items: tuple[str, ...]) -> None:
    """Check that W&B will work, before containers start: one row per check, with the fix.

    Resolves the settings like a task (with --task, like that task: its @wandb_init arguments and
    its environment's secrets). Exit code 0 when every check passes, 1 otherwise.
    """
    from ._preflight import check, format_results

    context = parse_context(context_items)
    rows = check(task_spec, online=online, context=context)
    click.echo(format_results(rows))
    raise SystemExit(0 if all(row.ok for row in rows) else 1)


@wandb_group.command(name="demo")
@click.option(
    "--dir", "wandb_dir", default=".wandb-demo", show_default=True, help="Where W&B writes the demo's runs."
)
def demo_command(wandb_dir: str) -> None:
    """Run a local Flyte workflow that logs to W&B in offline mode (no account, no network)."""
    from .demo import main

    raise SystemExit(main(["--dir", wandb_dir]))


@wandb_group.command(name="report")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Where to write the page (default: wandb-report-<run id>.html, or for several runs "
    "wandb-compare-<n>-runs-<hash>.html, here).",
)
def report_command(targets: tuple[str, ...], output: str | None) -> None:
    """Write local runs' charts as one HTML page (no Flyte, no W&B server).

    A TARGET is a run's folder (wandb/offline-run-... or wandb/run-...) or a run id looked up in
    the local wandb folders (the configured dir, WANDB_DIR, the working directory). One TARGET:
    the run's charts, config and summary, the page the "Weights & Biases" tab of a task's Flyte
    report shows. Several: the runs compared, a table of the runs and one chart per shared metric.
    """
    from ._report import REPORT_EXTRA_HINT, charts_available, locate_run_dirs, write_report

    if not charts_available():
        _fail(f"the report's charts need the drawing library pygal: {REPORT_EXTRA_HINT}")
    found: list[tuple[str, list[Path]]] = []
    for target in targets:
        run_dirs = locate_run_dirs(target)
        if not run_dirs:
            _fail(
                f"no W&B run directory or run id {target!r} here: give a run folder such as "
                "wandb/offline-run-20250101_120000-abc123, or the id of a run under WANDB_DIR or this folder"
            )
        found.append((target, run_dirs))
    if len(found) > 1:
        _compare_command(found, Path(output) if output else None)
        return
    target, run_dirs = found[0]
    try:
        written = write_report(run_dirs, Path(output) if output else None)
    except (OSError, ValueError) as exc:
        _fail(f"could not write the report of {target!r}: {exc}")
    click.echo(f"Wrote the report of {target} to {written}")


def _compare_command(found: list[tuple[str, list[Path]]], output: Path | None) -> None:
    """``flyte wandb report`` with several targets: their comparison page."""
    from ._report_compare import compare_run_dirs

    try:
        written, comparison = compare_run_dirs([(target, dirs) for target, dirs in found], output)
    except OSError as exc:
        _fail(f"could not write the comparison of {', '.join(repr(t) for t, _ in found)}: {exc}")
    runs = sum(1 for row in comparison.rows if not row.missing)
    unread = len(comparison.rows) - runs
    more = f" ({unread} could not be read: see the page)" if unread else ""
    click.echo(f"Wrote the comparison of {runs} runs{more} to {written}")
