"""The runs of one fan-out belong together in W&B: grouping defaults for a child's own run.

A parent task with a W&B run that fans out (``asyncio.gather``, ``flyte.map``, a trial loop) over
children that each start a run of their own (``run_mode="new"``) gives each child's run, unless
the user set them:

- ``group``: the parent's run id, so that W&B's "group by" and group page
  (``{host}/{entity}/{project}/groups/{parent run id}``) show the siblings together;
- ``job_type``: the child's Flyte task name;
- ``config["flyte"]["parent_run"]``: the parent's run id, next to the ``flyte`` backlink entry
  (written by :mod:`._lineage` from :attr:`FanoutIdentity.parent_run`).

A ``group`` or ``job_type`` the user set in any layer always wins. The ranks of a distributed task
in ``run_mode="new"`` keep their own group (``{run id}``, what the task's link opens): the fan-out
parent is then recorded only as ``parent_run`` and ``job_type``.

:func:`plan_fanout_identity` decides (pure); :func:`with_fanout_identity` applies the decision to
a task's run plan. The layout is documented in ``docs/run-modes.md`` ("Fan-outs").

Example:
    >>> fan = plan_fanout_identity(parent_run_id="r1-a0", own_run_id="r1-a3", task_name="env.train")
    >>> fan.group, fan.job_type, fan.parent_run
    ('r1-a0', 'env.train', 'r1-a0')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._layers import Resolved
    from ._run import TaskRunPlan

__all__ = ["MAX_GROUP", "MAX_JOB_TYPE", "FanoutIdentity", "plan_fanout_identity", "with_fanout_identity"]

#: W&B's limits on the length of a group name and of a job type.
MAX_GROUP = 128
MAX_JOB_TYPE = 64


@dataclass(frozen=True, slots=True)
class FanoutIdentity:
    """What a child's own run gets from its fan-out parent; ``None`` fields are left alone.

    Example:
        >>> FanoutIdentity().parent_run is None
        True
    """

    group: str | None = None
    job_type: str | None = None
    parent_run: str | None = None


def plan_fanout_identity(
    *,
    parent_run_id: str | None,
    own_run_id: str,
    task_name: str | None,
    user_group: str | None = None,
    user_job_type: str | None = None,
    distributed_group: str | None = None,
) -> FanoutIdentity:
    """Decide the fan-out entries of a run a task starts for itself. Pure: no wandb, no I/O.

    ``parent_run_id`` is the W&B run of the enclosing task (``None``: no parent run, nothing to
    do); ``own_run_id`` the run this task starts (the parent's own id means the task writes into
    its parent's run: not a fan-out child). ``user_group`` / ``user_job_type`` are the values the
    user set in any layer (they win); ``distributed_group`` the group a distributed task's ranks
    share (kept: the task's link opens it).

    Example:
        >>> plan_fanout_identity(parent_run_id="p", own_run_id="c", task_name="env.t", user_group="mine")
        FanoutIdentity(group=None, job_type='env.t', parent_run='p')
        >>> plan_fanout_identity(parent_run_id=None, own_run_id="c", task_name="env.t")
        FanoutIdentity(group=None, job_type=None, parent_run=None)
        >>> plan_fanout_identity(parent_run_id="p", own_run_id="c", task_name="env.t", distributed_group="c")
        FanoutIdentity(group=None, job_type='env.t', parent_run='p')
    """
    if not parent_run_id or parent_run_id == own_run_id:
        return FanoutIdentity()
    group = None
    if user_group is None and distributed_group is None:
        group = parent_run_id[:MAX_GROUP]
    job_type = None
    if user_job_type is None and task_name:
        job_type = task_name[:MAX_JOB_TYPE]
    return FanoutIdentity(group=group, job_type=job_type, parent_run=parent_run_id)


def with_fanout_identity(plan: TaskRunPlan, resolved: Resolved, task_name: str | None) -> TaskRunPlan:
    """``plan`` with the fan-out entries of :func:`plan_fanout_identity` applied.

    Only a run the task starts and owns (``init``, owner) is a fan-out child's run; a task that
    writes into its parent's run, or a rank that does not own the run, is left as it is.

    Example:
        >>> from flyteplugins.wandb._layers import resolve
        >>> from flyteplugins.wandb._run import plan_task_run
        >>> ctx = {"_wandb_run_id": "r-a0", "wandb_run_mode": "new"}
        >>> resolved = resolve(context=ctx, use_current_context=False)
        >>> plan = plan_task_run(resolved, run_name="r", action_name="a1", remote=False)
        >>> plan = with_fanout_identity(plan, resolved, "env.train")
        >>> plan.init_kwargs["group"], plan.init_kwargs["job_type"], plan.parent_run
        ('r-a0', 'env.train', 'r-a0')
    """
    parent = resolved.parent_run
    if parent is None or plan.action != "init" or not plan.owner or plan.identity is None:
        return plan
    kwargs = plan.init_kwargs
    # A group in the arguments that no layer set is the one a distributed task's ranks share.
    distributed_group = kwargs.get("group") if resolved.get("group") is None else None
    user_kwargs = resolved.get("kwargs") or {}
    fan = plan_fanout_identity(
        parent_run_id=parent.id,
        own_run_id=plan.identity.id,
        task_name=task_name,
        user_group=resolved.get("group") or user_kwargs.get("group"),
        user_job_type=resolved.get("job_type") or user_kwargs.get("job_type"),
        distributed_group=distributed_group,
    )
    if fan.parent_run is None:
        return plan
    new_kwargs = dict(kwargs)
    if fan.group is not None:
        new_kwargs["group"] = fan.group
    if fan.job_type is not None:
        new_kwargs["job_type"] = fan.job_type
    return dataclasses.replace(plan, init_kwargs=new_kwargs, parent_run=fan.parent_run)
