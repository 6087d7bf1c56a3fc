"""Starting, attaching to and finishing W&B runs around a task.

Deciding is separate from doing: :func:`plan_task_run` is pure (which run, which ``wandb.init``
arguments, who finishes), :class:`RunScope` carries the plan out. The values come from the one
resolution, so the run is the one the task's link points at.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _active, _compat
from ._active import (
    ActiveRun,
    current_run_identity,
    get_wandb_run,
    get_wandb_run_dir,
    get_wandb_sweep_id,
    reset_sweep_id,
    set_sweep_id,
)
from ._codec import RunIdentity, encode_run_identity
from ._deadline import call_within
from ._distributed import DistributedInfo, ElasticTopology, plan_distributed_run, task_distributed_info
from ._errors import WandbConfigError, WandbRunError
from ._fanout import with_fanout_identity
from ._layers import Layer, Resolved, resolve
from ._names import init_argument_hint
from ._plan import own_run_id, own_run_place, task_run_target
from ._rehearsal import DeclaredEnvironment
from ._signals import Budget, bound_exit

__all__ = [
    "ActiveRun",
    "RunScope",
    "TaskRunPlan",
    "current_run_identity",
    "get_wandb_run",
    "get_wandb_run_dir",
    "get_wandb_sweep_id",
    "plan_task_run",
    "reset_sweep_id",
    "set_sweep_id",
]

logger = logging.getLogger("flyteplugins.wandb")

# wandb.init() arguments that come from first-class fields; everything else passes through kwargs.
_INIT_FIELDS = ("project", "entity", "id", "name", "tags", "config", "mode", "group", "notes", "job_type")


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskRunPlan:
    """What a task does about W&B: reuse a live run, ``init`` one, or skip (a silent rank)."""

    action: Literal["reuse", "init", "skip"]
    identity: RunIdentity | None
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] | None = None
    owner: bool = False
    finishes: bool = False
    # The run of the fan-out parent that started this task, for a run of its own (see _fanout).
    parent_run: str | None = None


def _init_kwargs(resolved: Resolved, run_id: str, entity: str | None, project: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(resolved.get("kwargs") or {})
    for name in _INIT_FIELDS:
        value = resolved.get(name)
        if value is not None:
            kwargs[name] = list(value) if isinstance(value, tuple) else value
    kwargs["id"] = run_id
    if entity:
        kwargs["entity"] = entity
    if project:
        kwargs["project"] = project
    return kwargs


def plan_task_run(
    resolved: Resolved,
    *,
    run_name: str,
    action_name: str,
    remote: bool,
    distributed: DistributedInfo | None = None,
    live_ids: frozenset[str] | set[str] = frozenset(),
    topology: ElasticTopology | None = None,
) -> TaskRunPlan:
    """Decide what a task does about W&B. Pure: no wandb, no I/O.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> resolved = resolve(context={}, use_current_context=False)
        >>> plan = plan_task_run(resolved, run_name="r", action_name="a", remote=False)
        >>> plan.action, plan.identity.id, plan.owner
        ('init', 'r-a', True)
    """
    host = str(resolved.get("host"))
    if distributed is not None:
        dist = plan_distributed_run(
            resolved.get("run_mode", "auto"),
            resolved.get("rank_scope", "global"),
            distributed,
            own_run_id(resolved, run_name, action_name),
            resolved.get("group"),
            topology=topology,
        )
        if not dist.initializes or dist.run_id is None:
            return TaskRunPlan("skip", None)
        entity, project = own_run_place(resolved)
        kwargs = _init_kwargs(resolved, dist.run_id, entity, project)
        if dist.group:
            kwargs["group"] = dist.group
        shared = None
        if dist.shared is not None:
            shared = {
                "mode": "shared",
                "x_primary": dist.shared.primary,
                "x_label": dist.shared.label,
                "x_update_finish_state": dist.shared.primary,
                # Each writer's local folder is named after its label: wandb's own "-1" suffix for a
                # second start of an id in the same second is not safe across processes.
                "x_sync_dir_suffix": dist.shared.label,
            }
        return TaskRunPlan(
            "init",
            RunIdentity(dist.run_id, entity, project, host),
            kwargs,
            shared,
            owner=dist.shared is None or dist.shared.primary,
            finishes=dist.finishes,
        )
    target = task_run_target(resolved, run_name, action_name)
    if target is None:
        raise WandbRunError(
            f"run_mode='shared' (from {resolved.origin('run_mode')}) needs a parent task with a W&B run, "
            "and there is none: start a run in the parent (@wandb_init) or use run_mode='auto'"
        )
    identity = RunIdentity(target.id, target.entity, target.project, target.host)
    if target.attach:
        if target.id in live_ids:
            return TaskRunPlan("reuse", identity)
        # The parent's run lives in another process: write into it in W&B shared mode, without
        # marking it finished (the parent owns it).
        kwargs = _init_kwargs(resolved, target.id, target.entity, target.project)
        kwargs.pop("group", None)
        return TaskRunPlan(
            "init",
            identity,
            kwargs,
            {"mode": "shared", "x_primary": False, "x_label": action_name, "x_update_finish_state": False},
            owner=False,
            finishes=True,
        )
    kwargs = _init_kwargs(resolved, target.id, target.entity, target.project)
    # A retried task starts again with the same id: resume it rather than make a second run.
    kwargs.setdefault("resume", "allow")
    shared = {"mode": "shared", "x_primary": True, "x_label": action_name} if remote else None
    return TaskRunPlan("init", identity, kwargs, shared, owner=True, finishes=True)


# --- carrying the plan out -----------------------------------------------------------------------


@functools.cache
def _accepted_init_arguments() -> frozenset[str] | None:
    """The keyword arguments wandb's own ``init`` accepts, or ``None`` when it accepts any.

    Taken once from wandb's real function, not from ``wandb.init``: a user's test suite may have
    replaced that with a mock or a wrapper (``(*args, **kwargs)``), and the run must still start.
    """
    import inspect

    try:
        parameters = inspect.signature(inspect.unwrap(_compat.real_wandb_init())).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - not introspectable: let wandb decide
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _check_init_kwargs(kwargs: Mapping[str, Any], resolved: Resolved) -> None:
    accepted = _accepted_init_arguments()
    if accepted is None:
        return
    for name in kwargs:
        if name not in accepted:
            raise WandbConfigError(
                name,
                kwargs[name],
                resolved.origin("kwargs") or "wandb.init arguments",
                init_argument_hint(name, accepted, _compat.wandb_version()),
            )


def _explicit_settings(settings: Any) -> dict[str, Any]:
    """The fields of a ``wandb.Settings`` that were set, without wandb's computed ones."""
    return _compat.explicit_settings(settings)


def _merge_settings(kwargs: dict[str, Any], shared: Mapping[str, Any] | None) -> None:
    import wandb

    existing = kwargs.pop("settings", None)
    if existing is None and not shared:
        return
    if existing is None:
        merged: dict[str, Any] = {}
    elif isinstance(existing, Mapping):
        # A wandb.Settings given to @wandb_init reaches here dumped to a dict, with wandb's
        # read-only computed fields next to the ones the user set: those cannot be passed back.
        computed = _compat.settings_computed_fields()
        merged = {k: v for k, v in existing.items() if k not in computed}
    else:
        merged = _explicit_settings(existing)
    shared = dict(shared or {})
    if merged.get("mode") in ("offline", "dryrun", "disabled"):
        # The user chose not to talk to a server: W&B shared mode (online only) must not undo that.
        shared.pop("mode", None)
    merged.update(shared)
    kwargs["settings"] = wandb.Settings(**_compat.settings_for_installed_wandb(merged))


_DEFAULT_TIMEOUT = 30.0


def _wandb_init(kwargs: dict[str, Any], budget: Budget | None = None) -> Any:
    """``wandb.init`` that does not kill the task when the W&B server cannot be reached.

    The run starts within ``budget``, and continues offline when the server cannot be reached
    (see :mod:`._fallback`).
    """
    from ._fallback import start_run
    from ._requirements import after_init, settings_overrides

    _compat.prepare_wandb()
    budget = budget or Budget(_DEFAULT_TIMEOUT)
    # What wandb does when the process ends is part of this run's cost (a pod ends with it).
    bound_exit(budget)
    kwargs = dict(kwargs)
    settings = dict(settings_overrides(kwargs.get("settings")))
    _merge_settings(kwargs, settings if kwargs.get("mode") != "disabled" else None)
    kwargs.setdefault("reinit", "create_new")
    run = start_run(kwargs, budget)
    after_init(run)
    return run


def _set_globals(run: Any) -> None:
    # With reinit="create_new" wandb leaves wandb.run / wandb.log alone; point them at the task's
    # run so that plain wandb.log(...) in a task body works.
    try:
        _compat.set_global_run(run)
        import wandb

        # wandb.log follows the task running here, as on a cluster where each task is a process:
        # overlapping sibling runs each get their own, and a task without @wandb_init gets none.
        wandb.log = _active.log_here
    except Exception:  # pragma: no cover - a wandb without this private helper
        logger.debug("could not set wandb.run", exc_info=True)


def _unset_globals(run: Any, previous: Any) -> None:
    """Before ``run`` finishes: if ``wandb.run`` is it, point ``wandb.run`` at a run still alive.

    Sibling runs overlap in one process (concurrent child tasks of a local run), so the run that
    was global when this one started may have finished first: fall back to the run of the
    enclosing task, then to the newest run still alive, so that the parent's ``wandb.log`` keeps
    working after its children.
    """
    try:
        current = _compat.stored_global_run()
        if current is not run and (current is None or not _compat.run_is_finished(current)):
            return
        enclosing = _active.current_active()
        newest_first = _active.live_runs_newest_first()
        for candidate in (previous, enclosing.run if enclosing else None, *newest_first):
            if candidate is not None and candidate is not run and not _compat.run_is_finished(candidate):
                _set_globals(candidate)
                return
        _compat.unset_global_run()
    except Exception:  # pragma: no cover
        logger.debug("could not reset wandb.run", exc_info=True)


class RunScope:
    """One task's (or function's) W&B run from start to finish.

    ``start()`` may run in a worker thread (it blocks on ``wandb.init``); ``activate()`` and
    ``deactivate()`` must run in the task's own context (they set context variables); ``finish()``
    may run anywhere.
    """

    def __init__(
        self,
        plan: TaskRunPlan,
        resolved: Resolved,
        action: str | None = None,
        remote: bool = False,
        output_path: str | None = None,
        action_run: str | None = None,
    ) -> None:
        self.plan = plan
        self.resolved = resolved
        # The Flyte action this scope runs for (its name, its run's name, its output path): the
        # run is visible to it only.
        self.action = action
        self.action_run = action_run
        self.remote = remote
        self.output_path = output_path
        self.active: ActiveRun | None = None
        self._token: Token[ActiveRun | None] | None = None
        self._publish: AbstractContextManager[Any] | None = None
        self._previous_global: Any = None
        # The time W&B may cost this task in total (start + finish), from the `timeout` setting.
        self.budget = Budget(float(resolved.get("timeout", _DEFAULT_TIMEOUT)))
        self._ended = False
        self._end_lock = threading.Lock()  # a signal's finish and the task's own may race

    @property
    def run(self) -> Any | None:
        """The W&B run, once started."""
        return self.active.run if self.active else None

    def start(self) -> None:
        plan = self.plan
        if plan.action == "skip" or plan.identity is None:
            return
        if plan.action == "reuse":
            if self.active is not None:
                return
            live = _active.live_run(plan.identity.id)
            if live is not None:
                self.active = ActiveRun(
                    live.run,
                    live.identity,
                    False,
                    self.action,
                    self.remote,
                    self.output_path,
                    self.action_run,
                )
                return
            # The parent's run finished in between: attach like a remote child would.
        # Importing wandb (seconds on a busy node) is part of what W&B costs the task.
        with self.budget.spending():
            _check_init_kwargs(plan.init_kwargs, self.resolved)
            kwargs = dict(plan.init_kwargs)
            _merge_settings(kwargs, plan.shared)
            run = _wandb_init(kwargs, self.budget)
        identity = RunIdentity(
            id=str(run.id),
            entity=plan.identity.entity or (getattr(run, "entity", None) or None),
            project=plan.identity.project or (getattr(run, "project", None) or None),
            host=plan.identity.host,
        )
        self.active = ActiveRun(
            run, identity, plan.owner, self.action, self.remote, self.output_path, self.action_run
        )
        # Only where another task writes into the same run (this task does not own it).
        if (
            plan.shared is not None
            and not plan.owner
            and self.remote
            and getattr(run, "offline", False) is True
        ):
            from ._rehearsal import warn_offline_shared

            warn_offline_shared(identity.id, str(getattr(run, "dir", "") or ""))
        if plan.owner:
            _active.register_live(self.active)

    def activate(self) -> None:
        if self.active is None:
            return
        self._token = _active.activate(self.active)
        if self.active.owner:
            self._previous_global = _compat.stored_global_run()
            _set_globals(self.active.run)
        flyte = sys.modules.get("flyte")
        if flyte is not None and flyte.ctx():
            # Children see the run's real identity, so that they attach to this run in this project.
            self._publish = flyte.custom_context(**encode_run_identity(self.active.identity))
            self._publish.__enter__()

    def deactivate(self) -> None:
        if self._publish is not None:
            self._publish.__exit__(None, None, None)
            self._publish = None
        if self._token is not None:
            _active.deactivate(self._token)
            self._token = None

    def finish(self, failed: bool) -> None:
        """Finish the run if this scope owns it (exit code 1 when the task failed).

        A failure to finish is logged, never raised: it must not cost the task its result.
        """
        self._end(1 if failed else 0, max(self.budget.remaining(), 1.0), preempting=False)

    def preempting(self) -> None:
        """Tell W&B that this run is being preempted (a signal arrived)."""
        if self.active is not None and not self._ended and self.plan.action != "reuse":
            self.active.run.mark_preempting()

    def preempt(self, exit_code: int, seconds: float) -> None:
        """Finish the run as preempted (a signal): flush, ``mark_preempting``, non-zero exit code."""
        self._end(exit_code, min(seconds, max(self.budget.remaining(), 1.0)), preempting=True)

    def _end(self, exit_code: int, seconds: float, preempting: bool) -> None:
        active = self.active
        if active is None or not self.plan.finishes or self.plan.action == "reuse":
            return
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        if active.owner:
            _active.unregister_live(active)
            _unset_globals(active.run, self._previous_global)

        def end() -> None:
            if preempting:
                active.run.mark_preempting()
            active.run.finish(exit_code=exit_code)

        done, error = call_within(end, seconds, "finish")
        if exit_code != 0 and self.remote and getattr(active.run, "offline", False) is True:
            from ._rehearsal import warn_failed_attempt

            warn_failed_attempt(active.identity.id, str(getattr(active.run, "dir", "") or ""))
        if error is not None:
            logger.warning("W&B run %s could not be finished cleanly: %s", active.identity.id, error)
        # wandb's own finish_timeout (see bound_timeouts) gives up uploading: private wandb API.
        elif not done or getattr(active.run, "_finish_timed_out", False):
            run_dir = os.path.dirname(str(active.run.dir))
            logger.warning(
                "W&B run %s did not finish within %.0f s (server slow or unreachable); its data is kept "
                "in %s; upload it later with: wandb sync %s",
                active.identity.id,
                seconds,
                run_dir,
                run_dir,
            )
        if active.owner and not preempting:
            from ._results import announce_results

            announce_results(active, self.remote)


def scope_for_task(
    task_layer: Layer | None,
    topology: ElasticTopology | None = None,
    declared: DeclaredEnvironment | None = None,
    task_name: str | None = None,
) -> RunScope:
    """Plan the W&B run of the Flyte task running now.

    ``declared`` is what the task's container gets from its declaration: its W&B variables are read
    over this process's, and in a local run settings taken from variables it does not declare are
    pointed out (a cluster lacks them). ``task_name`` (the Flyte task's name) is the ``job_type``
    of a fan-out child's own run.
    """
    import flyte

    ctx = flyte.ctx()
    if not ctx:
        raise WandbRunError("@wandb_init task wrapper called outside a Flyte task")
    declared = declared or DeclaredEnvironment()
    resolved = resolve("run", task=task_layer, declared_env=declared.wandb)
    remote = ctx.mode == "remote"
    if not remote:
        from ._rehearsal import warn_environment

        warn_environment(resolved, declared.names)
    plan = plan_task_run(
        resolved,
        run_name=ctx.action.run_name or "local",
        action_name=ctx.action.name,
        remote=remote,
        distributed=task_distributed_info(topology),
        live_ids=_active.live_ids(),
        topology=topology,
    )
    plan = with_fanout_identity(plan, resolved, task_name)
    if not remote and declared.wandb:
        from ._rehearsal import with_declared_server

        plan = with_declared_server(plan, declared.wandb)
    return RunScope(
        plan, resolved, ctx.action.name, remote, _active.current_output_path(), ctx.action.run_name
    )


def scope_for_function(task_layer: Layer | None) -> RunScope:
    """Plan the run of a plain ``@wandb_init`` function (e.g. a sweep objective under ``wandb.agent``).

    Inside a task or another ``@wandb_init`` function it writes to that run; elsewhere it starts its
    own run from the resolved settings (ids left to W&B unless one is configured).
    """
    active = _active.current_active()
    resolved = resolve("run", task=task_layer)
    action_run, action = _active.current_action() or (None, None)
    if active is not None:
        output_path = _active.current_output_path()
        scope = RunScope(
            TaskRunPlan("reuse", active.identity), resolved, action, active.remote, output_path, action_run
        )
        scope.active = ActiveRun(
            active.run, active.identity, False, action, active.remote, output_path, action_run
        )
        return scope
    kwargs = _init_kwargs(resolved, "", resolved.get("entity"), resolved.get("project"))
    run_id = resolved.get("id")
    if run_id:
        kwargs["id"] = run_id
    else:
        kwargs.pop("id")
    if os.environ.get("WANDB_SWEEP_ID"):
        # A trial started by wandb.agent: the sweep decides the run's id, project and entity
        # (wandb ignores, with a warning each, any that are passed).
        for name in ("id", "project", "entity"):
            kwargs.pop(name, None)
    identity = RunIdentity(
        run_id or "", resolved.get("entity"), resolved.get("project"), str(resolved.get("host"))
    )
    plan = TaskRunPlan("init", identity, kwargs, owner=True, finishes=True)
    return RunScope(plan, resolved, action, output_path=_active.current_output_path(), action_run=action_run)
