"""Where a local run's W&B results are: one line per W&B run, at the end of the task that owns it.

A local Flyte run shows no UI, so nothing would tell the user where the run's W&B page, its folder
on disk and the task's Flyte report are, nor the Flyte action name that ``flyte wandb link`` needs.
When the task that owns a run (the one that started it) ends, this module says it once, in one
line::

    W&B run r1-a0 (Flyte action a0): https://wandb.ai/team/proj/runs/r1-a0; folder ./wandb/offline-run-...;
    report /tmp/.../a0/report.html

(one line on screen). Tasks that write into another task's run say nothing; on a cluster Flyte
shows the links itself, so nothing is said there either. :func:`plan_results` decides what to
say (pure); :func:`announce_results` says it.

The line goes to the logger ``flyteplugins.wandb.results`` at level INFO, and is said unless that
logger (or ``flyteplugins.wandb``) is set above INFO: the root logger's default level (WARNING)
does not hide it. When logging is not configured in the process, it is printed to stderr; when it
is, the configured handlers get it like any other record. Silence it with::

    logging.getLogger("flyteplugins.wandb.results").setLevel(logging.WARNING)

Example:
    >>> results = plan_results(
    ...     remote=False, owner=True, disabled=False, run_id="r1-a0", action="a0",
    ...     link="https://wandb.ai/team/proj/runs/r1-a0", run_dir="/tmp/offline-run-1-r1-a0",
    ...     report=None,
    ... )
    >>> print(results_line(results))
    W&B run r1-a0 (Flyte action a0): https://wandb.ai/team/proj/runs/r1-a0; folder /tmp/offline-run-1-r1-a0
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["RESULTS_LOGGER", "RunResults", "announce_results", "plan_results", "results_line", "said_here"]

RESULTS_LOGGER = "flyteplugins.wandb.results"


class _PrintUnlessConfigured(logging.Handler):
    """Prints a record to stderr unless logging is configured for the results logger or above it.

    With a handler on the way up (the root logger's, after ``logging.basicConfig()``, or the
    ``flyteplugins.wandb`` logger's), the record reaches it by propagation: printing it here too
    would say it twice.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if any(handler is not self for handler in results_logger.handlers):
            return  # a handler of the user's on this logger itself
        logger: logging.Logger | None = results_logger
        while logger is not None and logger.propagate:
            logger = logger.parent
            if logger is not None and logger.handlers:
                return
        try:
            _print_past_wandb(self.format(record) + "\n")
        except Exception:  # a closed stderr must not fail the task
            self.handleError(record)


def _print_past_wandb(text: str) -> None:
    """Print ``text`` on stderr, past W&B's console capture.

    wandb records what the process writes through ``sys.stderr.write`` into the console log of
    every run live in the process (in a local run, the parent's and the running siblings'). The
    line says where one run's results are: it belongs in none of them, and a fan-out's children
    would each send theirs into every other live run. Written to the stream's binary buffer (after
    flushing its text layer, to keep the order), it reaches the terminal and no run's log.
    """
    stream = sys.stderr
    raw = getattr(stream, "buffer", None)
    if raw is None or not callable(getattr(raw, "write", None)):
        stream.write(text)  # a stream without a binary layer (a notebook's): as it is
        stream.flush()
        return
    stream.flush()
    raw.write(text.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace"))
    raw.flush()


results_logger = logging.getLogger(RESULTS_LOGGER)
if not any(isinstance(h, _PrintUnlessConfigured) for h in results_logger.handlers):
    results_logger.addHandler(_PrintUnlessConfigured())

_announced_lock = threading.Lock()
_announced: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class RunResults:
    """Where one W&B run's results are, as a local run's end announces them.

    Example:
        >>> RunResults("r1-a0", "a0", None, "/tmp/wandb/offline-run-1-r1-a0", None).link is None
        True
    """

    run_id: str
    action: str | None
    link: str | None
    run_dir: str | None
    report: str | None


def plan_results(
    *,
    remote: bool,
    owner: bool,
    disabled: bool,
    run_id: str,
    action: str | None,
    link: str | None,
    run_dir: str | None,
    report: str | None,
) -> RunResults | None:
    """What the end of a task announces about its W&B run, or ``None`` when it announces nothing. Pure.

    Only the task that owns the run (started it) announces it, only in a local run (on a cluster
    Flyte shows the links), only for a Flyte action, and not when W&B is disabled. Links and
    report paths that are not web or local addresses are left out.

    Example:
        >>> plan_results(remote=True, owner=True, disabled=False, run_id="r", action="a0",
        ...              link=None, run_dir=None, report=None) is None
        True
        >>> plan_results(remote=False, owner=True, disabled=False, run_id="r", action="a0",
        ...              link="javascript:x", run_dir=None, report=None).link is None
        True
    """
    if remote or not owner or disabled or not run_id or not action:
        return None
    if link is not None and not link.startswith(("https://", "http://")):
        link = None
    return RunResults(run_id, action, link, run_dir or None, report or None)


def results_line(results: RunResults) -> str:
    """The one line that says where a run's results are.

    Example:
        >>> print(results_line(RunResults("r", "a0", None, "/w/offline-run-1-r", "/m/a0/report.html")))
        W&B run r (Flyte action a0): folder /w/offline-run-1-r; report /m/a0/report.html
    """
    folder, report = _labelled("folder", results.run_dir), _labelled("report", results.report)
    parts = [part for part in (results.link, folder, report) if part]
    head = f"W&B run {results.run_id} (Flyte action {results.action})"
    return f"{head}: {'; '.join(parts)}" if parts else head


def _labelled(label: str, value: str | None) -> str | None:
    return f"{label} {value}" if value else None


def _text(value: Any) -> str | None:
    """A string attribute of a run, ``None`` for anything else (a user's mocked run)."""
    return value if isinstance(value, str) and value else None


def _shown(path: str) -> str:
    """A folder under the working directory relative to it (shorter, and what a shell there needs)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return relative if not relative.startswith("..") else path


def _link(identity: Any) -> str | None:
    from ._urls import run_url

    host, entity, project = _text(identity.host), _text(identity.entity), _text(identity.project)
    if not (host and entity and project and identity.id):
        return None
    return run_url(host, entity, project, str(identity.id))


def said_here() -> bool:
    """Whether the line is said: INFO unless ``flyteplugins.wandb.results`` or a logger above it
    (below the root) is set to a higher level, or logging is disabled at INFO.

    The root logger's level (WARNING unless configured) does not silence it: the line is meant to
    be seen by default.

    Example:
        >>> import logging
        >>> logging.getLogger("flyteplugins.wandb").setLevel(logging.WARNING)
        >>> said_here()
        False
        >>> logging.getLogger("flyteplugins.wandb").setLevel(logging.NOTSET)
        >>> said_here()
        True
    """
    if results_logger.disabled or logging.root.manager.disable >= logging.INFO:
        return False
    logger: logging.Logger | None = results_logger
    while logger is not None and logger is not logging.root:
        if logger.level != logging.NOTSET:
            return logger.level <= logging.INFO
        logger = logger.parent
    return True


def _flyte_mode() -> str | None:
    """The Flyte mode of the action running here (``local``, ``remote``, ``hybrid``), if any."""
    flyte = sys.modules.get("flyte")
    ctx = flyte.ctx() if flyte is not None else None
    mode = getattr(ctx, "mode", None)
    return mode if isinstance(mode, str) else None


def _has_tab(run_id: str) -> bool:
    from ._report_tab import has_tab

    return has_tab(run_id)


def announce_results(active: Any, remote: bool) -> None:
    """Say where ``active``'s run's results are (once per run folder in this process). Never raises.

    ``active`` is the task's :class:`~flyteplugins.wandb._active.ActiveRun`, after its run has been
    finished. The report page is named when the task writes the run's report tab (it was declared
    with ``report=True``).

    Example:
        >>> announce_results(None, remote=False)  # nothing to announce
    """
    try:
        if active is None or not said_here():
            return
        run = active.run
        files = _text(getattr(run, "dir", None))
        report_path = None
        if active.output_path and _has_tab(str(active.identity.id)):
            from ._compat import local_report_file

            report_path = local_report_file(str(active.output_path))
        results = plan_results(
            remote=remote or _flyte_mode() not in (None, "local"),
            owner=bool(active.owner),
            disabled=getattr(run, "disabled", False) is True,
            run_id=str(active.identity.id),
            action=_text(active.action),
            link=_link(active.identity),
            run_dir=_shown(os.path.dirname(files)) if files else None,
            report=report_path,
        )
        if results is None:
            return
        key = (results.run_id, results.run_dir or "")
        with _announced_lock:
            if key in _announced:
                return
            _announced.add(key)
        results_logger.handle(
            results_logger.makeRecord(
                results_logger.name, logging.INFO, __file__, 0, results_line(results), (), None
            )
        )
    except Exception as exc:  # saying where results are must never cost the task its result
        logging.getLogger("flyteplugins.wandb").debug("could not say where the W&B results are: %s", exc)
