"""Which W&B run the code running here writes to.

A run belongs to the Flyte action that started it or attached to it. Inside that action (its
body, its ``flyte.trace`` functions, its asyncio tasks and threads started with a copied context)
:func:`get_wandb_run` returns it; in any other action it returns ``None``, locally exactly as on a
cluster. In a local run every action runs in one process and a child task inherits its parent's
context variables, so the run is matched against the action running now, not merely looked up.

A process may run several actions at once: a local run holds all of them, a reusable container
(``flyte.ReusePolicy``) runs up to ``concurrency`` actions side by side and many one after the
other. What the process is (one action or several, one run or several) is never assumed from
where it runs: :func:`running_actions` counts the actions whose body runs here now, and each run
knows the action it belongs to. An action is known by its run's name and its own
(:func:`current_action`): action names repeat across runs (every run's first action is ``a0``, a
child's name is a hash of its parent's name and inputs), and a reusable container runs the actions
of many runs. ``wandb.run`` follows the same rule while a run of the plugin is
global (see :func:`global_run`).

Example:
    >>> from flyteplugins.wandb._active import get_wandb_run
    >>> get_wandb_run() is None
    True
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._codec import RunIdentity
from ._compat import follow_global_run, task_action, watch_task_execution
from ._layers import current_context, resolve

__all__ = [
    "ActionKey",
    "ActiveRun",
    "current_action",
    "current_action_name",
    "current_run_identity",
    "get_wandb_run",
    "get_wandb_run_dir",
    "get_wandb_sweep_id",
    "global_run",
    "live_ids",
    "log_here",
    "register_live",
    "running_actions",
    "unregister_live",
    "watch_actions",
]

local_remote_logger = logging.getLogger("flyteplugins.wandb.local_remote")

ActionKey: TypeAlias = tuple[str, str]
"""A Flyte action as this module knows it: (its run's name, its name)."""


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """The W&B run the code running here writes to.

    ``action`` is the name of the Flyte action that started or attached to the run (``None`` for
    a ``@wandb_init`` function outside any task), ``action_run`` the name of that action's Flyte
    run; ``remote`` whether that action runs on a cluster (its process may hold other actions: a
    reusable container); ``output_path`` that action's output path (which its traces keep).
    """

    run: Any
    identity: RunIdentity
    owner: bool
    action: str | None = None
    remote: bool = False
    output_path: str | None = None
    action_run: str | None = None

    @property
    def action_key(self) -> ActionKey | None:
        """The action the run belongs to, as :func:`current_action` names it."""
        return None if self.action is None else (self.action_run or "", self.action)


_current: ContextVar[ActiveRun | None] = ContextVar("flyteplugins_wandb_run", default=None)
_live_lock = threading.Lock()
# Runs started by this process and not finished yet, by id: a child task in the same process
# (local runs) that shares its parent's run reuses the object instead of a second wandb.init.
_live: dict[str, ActiveRun] = {}
# Runs whose plain-thread lookup was refused, so that each run warns once (forgotten as it ends).
_warned_plain_thread: set[str] = set()
# The actions whose task body runs in this process now, by a token of each start.
_running: dict[int, ActionKey | None] = {}
_tokens = itertools.count()
_watching = False


def _action_started() -> int:
    token = next(_tokens)
    action = current_action()
    with _live_lock:
        _running[token] = action
    return token


def _action_ended(token: int) -> None:
    with _live_lock:
        _running.pop(token, None)


def watch_actions() -> bool:
    """Count the Flyte actions that run in this process from now on; ``False`` while flyte cannot be watched.

    Called when this module is imported (``@wandb_init`` needs flyte imported first, so every task
    module that uses the plugin watches from its import on) and again by the first look-up
    that needs the count. Idempotent.

    Example:
        >>> watch_actions() in (True, False)
        True
    """
    global _watching
    if not _watching:
        _watching = watch_task_execution(_action_started, _action_ended)
    return _watching


def running_actions() -> tuple[ActionKey | None, ...] | None:
    """The Flyte actions whose body runs in this process now (:func:`current_action`); ``None``
    when unknown.

    A local run counts every task that has started and not ended (a parent awaiting its
    children too); a pod counts its one action; a reusable container the actions it runs at
    this moment.

    Example:
        >>> running_actions() in (None, ())
        True
    """
    if not watch_actions():
        return None
    with _live_lock:
        return tuple(_running.values())


def _task_context() -> Any | None:
    flyte = sys.modules.get("flyte")
    if flyte is None:
        return None
    ctx = flyte.ctx()
    return ctx if ctx else None


def current_action() -> ActionKey | None:
    """The Flyte action whose code runs here, as (its run's name, its name); ``None`` outside any task.

    Inside a ``flyte.trace`` function this is the task's action, not the trace's (on flyte
    releases that record it; see :func:`_belongs_here` for the others).

    Example:
        >>> current_action() is None
        True
    """
    ctx = _task_context()
    return _action_key(ctx) if ctx is not None else None


def current_action_name() -> str | None:
    """The name of the Flyte action whose code runs here (:func:`current_action`), or ``None``.

    Example:
        >>> current_action_name() is None
        True
    """
    action = current_action()
    return action[1] if action is not None else None


def _action_key(ctx: Any) -> ActionKey | None:
    action = task_action(ctx) or ctx.action
    if action is None or not action.name:
        return None
    return (str(getattr(action, "run_name", None) or ""), str(action.name))


def current_output_path() -> str | None:
    """The output path of the Flyte action whose code runs here: one per action, kept in its traces.

    Example:
        >>> current_output_path() is None
        True
    """
    ctx = _task_context()
    return str(ctx.output_path) if ctx is not None and getattr(ctx, "output_path", None) else None


def _belongs_here(active: ActiveRun) -> bool:
    if active.action is None:
        return True
    ctx = _task_context()
    if ctx is None:
        return False
    if _action_key(ctx) == active.action_key:
        return True
    # Flyte releases without TaskContext.task_action put a trace's own action in ctx.action; the
    # trace keeps its task's output path, which no other action shares.
    return (
        task_action(ctx) is None
        and active.output_path is not None
        and getattr(ctx, "output_path", None) == active.output_path
    )


def _only_live_run(warn: bool = True) -> Any | None:
    """The fallback of a thread that carries no context: a run, only when it can only be this thread's.

    Outside Flyte, or where no action body runs in the process (a distributed worker), the only
    run alive. Inside Flyte, the run of the only action running in the process, when that
    action has exactly one run. Otherwise
    the thread cannot tell which action started it: ``None``, with one warning per run.
    """
    with _live_lock:
        runs = list(_live.values())
    if not runs:
        return None
    actions = running_actions()
    if len(runs) == 1 and (runs[0].action is None or actions == ()):
        # Outside Flyte (a @wandb_init function), or a process that runs no action body of its
        # own (a distributed worker started by the launcher): the process's only run.
        return runs[0].run
    if actions is not None and len(actions) == 1:
        mine = [a for a in runs if a.action is not None and a.action_key == actions[0]]
        if len(mine) == 1:
            return mine[0].run
        if not mine:
            return None  # the one action running here has no run: the thread is its, and so is None
    if warn:
        _warn_plain_thread(runs, actions)
    return None


def _warn_plain_thread(runs: list[ActiveRun], actions: tuple[ActionKey | None, ...] | None) -> None:
    with _live_lock:
        fresh = [a.identity.id for a in runs if a.identity.id not in _warned_plain_thread]
        _warned_plain_thread.update(fresh)
    if not fresh:
        return
    if actions is None:
        why = "the Flyte actions running in this process cannot be counted"
    else:
        why = f"{len(actions)} Flyte actions run in this process"
    local_remote_logger.warning(
        "get_wandb_run() was called in a thread that does not carry its task's context while %s (a "
        "local run holds every task in one process, a reusable container several actions at once): "
        "it returns None, because the thread cannot tell which action started it. Start the thread "
        "with the task's context: asyncio.to_thread(...), or threading.Thread(target="
        "contextvars.copy_context().run, args=(fn,))",
        why,
    )


def get_wandb_run() -> Any | None:
    """The W&B run of the task (or ``@wandb_init`` function) running here, or ``None``.

    Works in the task body, in ``flyte.trace`` functions, in asyncio tasks and in threads started
    with a copied context. A task without ``@wandb_init`` gets ``None``, in a local run as on a
    cluster, even while its parent's run is alive. A thread that carries no context gets the run
    of the only action running in its process (a pod's, or a local run's single task); while
    several actions run in the process (a local run's parent and children, a reusable container's
    concurrent actions) it gets ``None``, with one warning, because it cannot tell whose it is.

    Example:
        ```python
        @wandb_init(project="demo")
        @env.task
        async def train() -> float:
            run = get_wandb_run()
            run.log({"loss": 0.1})
            return 0.1
        ```
    """
    return _run_here(warn=True)


def _run_here(warn: bool) -> Any | None:
    active = _current.get()
    if active is not None:
        return active.run if _belongs_here(active) else None
    if current_action_name() is not None:
        # A Flyte action whose context knows no run: it has none, whatever else is alive.
        return None
    return _only_live_run(warn)


def get_wandb_run_dir() -> str | None:
    """The local directory of the current run's files (``run.dir``), or ``None`` without a run.

    Example:
        ```python
        path = get_wandb_run_dir()
        if path:
            print(open(os.path.join(path, "requirements.txt")).read())
        ```
    """
    run = get_wandb_run()
    if run is None:
        return None
    return str(run.dir)


def log_here(*args: Any, **kwargs: Any) -> Any:
    """``wandb.log`` while one of the plugin's runs is global: log into the run of the code running here.

    In a task without ``@wandb_init`` it raises the error ``wandb.log`` raises there on a cluster,
    where that task runs in a process without a run, instead of writing into its parent's run.
    """
    run = get_wandb_run()
    if run is None:
        import wandb

        task = current_action_name()
        where = f"Flyte action {task!r} has no W&B run" if task else "no W&B run is known in this thread"
        raise wandb.Error(
            f"You must call wandb.init() before wandb.log(): {where}. Decorate the task with "
            "@wandb_init (run_mode='auto' writes into its parent's run), as it would need on a cluster."
        )
    return run.log(*args, **kwargs)


def global_run(stored: Any) -> Any:
    """What ``wandb.run`` answers when wandb (or a user) set it to ``stored``.

    While ``stored`` is a run of the plugin, ``wandb.run`` is the run of the code running here
    (:func:`get_wandb_run`): an action never sees another action's run through it, in a local
    run or a reusable container, as on a cluster where each action is a process. Any other value
    (``None``, a run the user started, a test's mock) is answered as set.

    Example:
        >>> global_run(None) is None
        True
        >>> global_run("a user's own value")
        "a user's own value"
    """
    if stored is None:
        return None
    with _live_lock:
        ours = any(active.run is stored for active in _live.values())
    # wandb reads wandb.run itself (e.g. when a run finishes): no warning for a thread of its own.
    return _run_here(warn=False) if ours else stored


def current_active() -> ActiveRun | None:
    """The active run of the code running here, if it belongs to the action running here."""
    active = _current.get()
    if active is not None and _belongs_here(active):
        return active
    return None


def activate(active: ActiveRun) -> Token[ActiveRun | None]:
    """Make ``active`` the run of the code running here (undo with :func:`deactivate`)."""
    return _current.set(active)


def deactivate(token: Token[ActiveRun | None]) -> None:
    """Undo :func:`activate`."""
    _current.reset(token)


def current_run_identity() -> RunIdentity | None:
    """Where the current run lives: the run active here, else the parent's published run."""
    active = current_active()
    if active is not None:
        return active.identity
    return resolve("run").parent_run


def live_ids() -> frozenset[str]:
    """The ids of the runs this process started and has not finished."""
    with _live_lock:
        return frozenset(_live)


def live_run(run_id: str) -> ActiveRun | None:
    """The live run started by this process with id ``run_id``."""
    with _live_lock:
        return _live.get(run_id)


def live_runs_newest_first() -> list[Any]:
    """The run objects this process started and has not finished, newest first."""
    with _live_lock:
        return [a.run for a in reversed(_live.values())]


def any_live() -> bool:
    """Whether this process has started a run it has not finished."""
    with _live_lock:
        return bool(_live)


def register_live(active: ActiveRun) -> None:
    """Remember a run this process started, for children in the same process to reuse.

    From then on ``wandb.run`` follows the code running here (see :func:`global_run`).
    """
    follow_global_run(global_run)
    with _live_lock:
        _live[active.identity.id] = active


def unregister_live(active: ActiveRun) -> None:
    """Forget a run this process is finishing."""
    with _live_lock:
        if _live.get(active.identity.id) is active:
            del _live[active.identity.id]
            _warned_plain_thread.discard(active.identity.id)


_sweep_id: ContextVar[str | None] = ContextVar("flyteplugins_wandb_sweep_id", default=None)


def get_wandb_sweep_id() -> str | None:
    """The id of the sweep created by the enclosing ``@wandb_sweep`` task (or its parent), or ``None``.

    Example:
        ```python
        @wandb_sweep
        @env.task
        async def tune() -> str:
            sweep_id = get_wandb_sweep_id()
            ...
        ```
    """
    found = _sweep_id.get()
    if found:
        return found
    return current_context().get("_wandb_sweep_id") or None


def set_sweep_id(sweep_id: str | None) -> Token[str | None]:
    """Make ``sweep_id`` the current sweep (used by ``@wandb_sweep``)."""
    return _sweep_id.set(sweep_id)


def reset_sweep_id(token: Token[str | None]) -> None:
    """Undo :func:`set_sweep_id`."""
    _sweep_id.reset(token)


# Every task module that uses the plugin imports flyte first: actions are counted from here on.
if "flyte._task" in sys.modules:
    watch_actions()
