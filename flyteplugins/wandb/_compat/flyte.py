"""flyte internals (private flyte API): task classes, initialisation, controllers, local trackers.

Example:
    >>> from flyteplugins.wandb._compat.flyte import is_function_task
    >>> is_function_task(print)
    False
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "action_tracker",
    "can_record_traces",
    "control_plane_available",
    "flyte_client",
    "flyte_initialized",
    "is_function_task",
    "local_report_file",
    "task_action",
    "tracked_actions",
    "watch_task_execution",
]


def is_function_task(obj: object) -> bool:
    """Whether ``obj`` is a Flyte function task (what ``@env.task`` returns).

    Example:
        >>> is_function_task(print)
        False
    """
    # private flyte API: flyte._task.AsyncFunctionTaskTemplate (2.0 and later)
    from flyte._task import AsyncFunctionTaskTemplate

    return isinstance(obj, AsyncFunctionTaskTemplate)


def control_plane_available() -> bool | None:
    """Whether flyte was initialised against a remote control plane; ``None`` when flyte cannot say.

    Example:
        >>> control_plane_available() in (True, False, None)
        True
    """
    # private flyte API: flyte._initialize.is_control_plane_available (2.7 and later)
    try:
        from flyte._initialize import is_control_plane_available
    except ImportError:
        return None
    try:
        return bool(is_control_plane_available())
    except Exception:
        return None


def flyte_initialized() -> bool:
    """Whether ``flyte.init()`` has run in this process.

    Example:
        >>> isinstance(flyte_initialized(), bool)
        True
    """
    # private flyte API: flyte._initialize.is_initialized
    from flyte import _initialize

    return bool(_initialize.is_initialized())


def local_report_file(output_path: str) -> str | None:
    """Where Flyte writes the report (``report.html``) of the action whose outputs go to ``output_path``.

    ``None`` when the outputs are not on this machine (an object store).

    Example:
        >>> local_report_file("/tmp/flyte/run/a0")
        '/tmp/flyte/run/a0/report.html'
        >>> local_report_file("s3://bucket/run/a0") is None
        True
    """
    # private flyte API: flyte._internal.runtime.io.report_path (the report's name next to outputs)
    try:
        from flyte._internal.runtime.io import report_path

        path = str(report_path(output_path))
    except Exception:
        path = output_path.rstrip("/") + "/report.html"
    if path.startswith("file://"):
        path = path[len("file://") :]
    if "://" in path:
        return None
    return os.path.abspath(path)


def can_record_traces() -> bool:
    """Whether a Flyte controller is running here (so ``flyte.trace`` calls are recorded).

    Example:
        >>> can_record_traces()
        False
    """
    # private flyte API: flyte._internal.controllers.get_controller
    try:
        from flyte._internal.controllers import get_controller

        get_controller()
    except Exception:
        return False
    return True


def action_tracker() -> Any:
    """A tracker to pass as ``flyte.with_runcontext(_tracker=...)``: it records a local run's actions.

    Example:
        >>> tracker = action_tracker()
        >>> list(tracked_actions(tracker))
        []
    """
    # private flyte API: flyte.cli._tui._tracker.ActionTracker, the local TUI's tracker
    from flyte.cli._tui._tracker import ActionTracker

    return ActionTracker()


def tracked_actions(tracker: Any) -> Iterator[tuple[str, Any]]:
    """``(action id, node)`` of each action a tracker saw, groups left out.

    A node has ``task_name`` and ``log_links`` (``(name, url)`` pairs, as Flyte rendered them).

    Example:
        >>> list(tracked_actions(action_tracker()))
        []
    """
    # private flyte API: ActionTracker._nodes
    nodes: Mapping[str, Any] = getattr(tracker, "_nodes", {})
    for action_id, node in list(nodes.items()):
        if not str(action_id).startswith("__group__"):
            yield str(action_id), node


def flyte_client() -> Any | None:
    """The Flyte client ``flyte.init(...)`` configured for a remote endpoint, or ``None``.

    Example:
        >>> flyte_client() is None  # doctest: +SKIP
        True
    """
    try:
        from flyte._initialize import _get_init_config

        config = _get_init_config()
    except Exception:  # a flyte without it, or not initialised
        return None
    return getattr(config, "client", None) if config is not None else None


def watch_task_execution(started: Callable[[], Any], ended: Callable[[Any], None]) -> bool:
    """Call ``started()`` when a Flyte function task's body begins in this process, ``ended(token)`` after.

    Every action a process runs (a local run's tasks, a pod's one action, the concurrent actions of
    a reusable container) goes through the task's ``execute``; ``started`` runs in the action's
    own context. Nothing is watched before this is called; ``False`` when flyte is not imported or
    has no such method. Idempotent (the callbacks of the first call stay).

    Example:
        >>> watch_task_execution(lambda: None, lambda token: None) in (True, False)
        True
    """
    # private flyte API: flyte._task.AsyncFunctionTaskTemplate.execute (2.0 and later)
    flyte_task = sys.modules.get("flyte._task")
    task_class = getattr(flyte_task, "AsyncFunctionTaskTemplate", None)
    original = getattr(task_class, "execute", None)
    if task_class is None or not callable(original):
        return False
    if getattr(original, "_flyteplugins_wandb", False):
        return True

    @functools.wraps(original)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = started()
        try:
            return await original(self, *args, **kwargs)
        finally:
            ended(token)

    execute._flyteplugins_wandb = True  # type: ignore[attr-defined]
    task_class.execute = execute
    return True


def task_action(ctx: Any) -> Any | None:
    """The action of the task running here, also inside a ``flyte.trace`` (``TaskContext.task_action``);
    ``None`` on flyte releases that do not record it (there a trace's ``ctx.action`` is its own).

    Example:
        >>> task_action(object()) is None
        True
    """
    return getattr(ctx, "task_action", None)
