"""Pure decisions: which W&B run a task writes to. No I/O, no wandb: easy to test, shared by the
link and the run start so that they can never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from ._layers import Resolved

__all__ = [
    "RunTarget",
    "SweepTarget",
    "default_run_id",
    "own_run_id",
    "own_run_place",
    "sweep_target",
    "task_run_target",
]


def default_run_id(run_name: str, action_name: str) -> str:
    """The id of a task's own run when the user gives none: ``{run_name}-{action_name}``.

    Example:
        >>> default_run_id("r123", "a0")
        'r123-a0'
    """
    return f"{run_name}-{action_name}"


@dataclass(frozen=True, slots=True)
class RunTarget:
    """The run a task writes to: its parent's (``attach``) or its own."""

    attach: bool
    id: str
    entity: str | None
    project: str | None
    host: str
    group: str | None


def own_run_id(resolved: Resolved, run_name: str, action_name: str) -> str:
    """The id of the run a task starts for itself.

    A user-given id wins, except one inherited from the parent that the parent's own run already
    uses: a new run with that id would silently be the parent's run again.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> own_run_id(resolve(context={}, use_current_context=False), "r1", "a2")
        'r1-a2'
    """
    user_id = resolved.get("id")
    parent = resolved.parent_run
    if user_id and not (parent is not None and user_id == parent.id and resolved.kind_of("id") == "parent"):
        return str(user_id)
    return default_run_id(run_name, action_name)


def own_run_place(resolved: Resolved) -> tuple[str | None, str | None]:
    """The entity and project of a run a task starts for itself (its own or a distributed one).

    The task's configuration wins; what it leaves unset comes from its parent's run, so that a
    run of its own lands beside the parent's: the parent may have had its project only from its own
    decorator, which children do not inherit. Used by the run start and the link alike.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> ctx = {"_wandb_run_id": "p1", "_wandb_run_entity": "team", "_wandb_run_project": "proj"}
        >>> own_run_place(resolve(context=ctx, use_current_context=False))
        ('team', 'proj')
    """
    parent = resolved.parent_run
    entity = resolved.get("entity") or (parent.entity if parent else None)
    project = resolved.get("project") or (parent.project if parent else None)
    return entity, project


def task_run_target(resolved: Resolved, run_name: str, action_name: str) -> RunTarget | None:
    """Decide the run a (non-distributed) task writes to; ``None`` for ``shared`` without a parent run.

    ``auto`` attaches to the parent's run when there is one, unless the task itself names another
    run id; ``new`` always starts its own run; ``shared`` always attaches. An attached run keeps
    the identity its parent recorded (entity, project, host), so the link points where the run is.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> resolved = resolve(context={"_wandb_run_id": "p1"}, use_current_context=False)
        >>> target = task_run_target(resolved, "r", "a")
        >>> target.attach, target.id
        (True, 'p1')
    """
    run_mode = resolved.get("run_mode", "auto")
    parent = resolved.parent_run
    entity = resolved.get("entity")
    project = resolved.get("project")
    host = str(resolved.get("host"))
    group = resolved.get("group")
    if parent is not None and run_mode != "new":
        task_id = resolved.get("id") if resolved.kind_of("id") == "task" else None
        if run_mode == "shared" or not task_id or task_id == parent.id:
            return RunTarget(
                attach=True,
                id=parent.id,
                entity=parent.entity or entity,
                project=parent.project or project,
                host=parent.host or host,
                group=group,
            )
    if run_mode == "shared":
        return None
    # A run of its own still lands beside the parent's run unless configured otherwise.
    own_entity, own_project = own_run_place(resolved)
    return RunTarget(
        attach=False,
        id=own_run_id(resolved, run_name, action_name),
        entity=own_entity,
        project=own_project,
        host=host,
        group=group,
    )


@dataclass(frozen=True, slots=True)
class SweepTarget:
    """Where a task's sweep lives: its entity, project and (once known) id.

    ``inherited`` says the sweep was created by a parent task (and is reused, not created).

    Example:
        >>> SweepTarget("team", "proj", None).id is None
        True
    """

    entity: str | None
    project: str | None
    id: str | None
    inherited: bool = False


def sweep_target(sweep: Resolved, run: Resolved, sweep_id: str | None = None) -> SweepTarget:
    """The sweep a task works with: the one a parent created, else its own.

    A sweep a parent created keeps the identity it was created with. Otherwise project and entity
    come from the task layer (decorator, link fields), then the sweep settings, then the run
    settings, each through their own layers. Pure: used by the sweep link and by ``@wandb_sweep``.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> ctx = {"_wandb_sweep_id": "s1", "_wandb_sweep_entity": "e", "_wandb_sweep_project": "p"}
        >>> sweep_target(resolve("sweep", context=ctx), resolve("run", context=ctx))
        SweepTarget(entity='e', project='p', id='s1', inherited=True)
    """
    parent = sweep.parent_sweep
    if parent is not None and sweep_id is None:
        return SweepTarget(
            parent.entity or sweep.get("entity") or run.get("entity"),
            parent.project or sweep.get("project") or run.get("project"),
            parent.id,
            inherited=True,
        )
    return SweepTarget(
        sweep.get("entity") or run.get("entity"),
        sweep.get("project") or run.get("project"),
        sweep_id,
    )
