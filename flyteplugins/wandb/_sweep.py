"""``@wandb_sweep``: a W&B sweep around a Flyte task, shared with the task's children, plus its link.

Deciding is separate from doing: :func:`sweep_target` and :func:`plan_sweep` are pure (which sweep,
in which project, with which configuration); the task wrapper carries the plan out with
``wandb.sweep``. The values come from the one resolution, so the sweep link, the sweep and the
children's view of it agree.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, overload

from ._codec import SweepIdentity, encode_sweep_identity
from ._config import sweep_dict
from ._decorated import within_decorated
from ._errors import WandbRunError
from ._layers import Layer, Resolved, layer, resolve
from ._link import WandbSweep
from ._plan import SweepTarget, sweep_target
from ._rehearsal import DeclaredEnvironment
from ._settings import SWEEP, DeclaredEnv, check_no_credentials, preserved_environ
from ._task_override import follow_env_overrides

__all__ = ["SweepPlan", "SweepTarget", "plan_sweep", "sweep_target", "wandb_sweep"]

logger = logging.getLogger("flyteplugins.wandb")

F = TypeVar("F", bound=Callable[..., Any])


# --- pure decisions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a ``@wandb_sweep`` task does: reuse its parent's sweep, create one, or skip (W&B disabled).

    ``config`` is the ``wandb.sweep()`` configuration for ``create``; ``download_logs`` whether the
    task downloads the sweep's runs after its body.

    Example:
        >>> plan = SweepPlan("create", SweepTarget("team", "proj", None), {"method": "grid"})
        >>> plan.identity is None, plan.with_id("s1").identity
        (True, SweepIdentity(id='s1', entity='team', project='proj'))
    """

    action: Literal["reuse", "create", "skip"]
    target: SweepTarget
    config: dict[str, Any] = field(default_factory=dict)
    prior_runs: tuple[str, ...] = ()
    download_logs: bool = False
    reason: str = ""

    @property
    def identity(self) -> SweepIdentity | None:
        """The sweep's identity once its id is known."""
        t = self.target
        return SweepIdentity(t.id, t.entity, t.project) if t.id else None

    def with_id(self, sweep_id: str) -> SweepPlan:
        """The same plan once ``wandb.sweep`` returned the sweep's id."""
        t = self.target
        return SweepPlan(
            self.action,
            SweepTarget(t.entity, t.project, sweep_id, t.inherited),
            self.config,
            self.prior_runs,
            self.download_logs,
            self.reason,
        )


_HOW_TO_CONFIGURE = (
    "give them with wandb_sweep_config(...) (in flyte.with_runcontext(custom_context=...) or a with-block "
    "in the parent task), in the [sweep] table of the configuration file, or as @wandb_sweep(method=..., "
    "parameters=...)"
)


def plan_sweep(
    sweep: Resolved,
    run: Resolved,
    *,
    run_name: str,
    action_name: str,
    download_logs: bool | None = None,
) -> SweepPlan:
    """Decide what a ``@wandb_sweep`` task does about its sweep. Pure: no wandb, no I/O.

    - A sweep a parent task created (``_wandb_sweep_id`` in the context) is reused.
    - With W&B disabled (``mode="disabled"``) no sweep is created.
    - Otherwise a sweep is created from the resolved sweep settings; its name defaults to
      ``{run_name}-{action_name}``. Without ``method`` and ``parameters`` this is an error.

    Example:
        >>> from flyteplugins.wandb import wandb_sweep_config
        >>> from flyteplugins.wandb._layers import resolve
        >>> with wandb_sweep_config(method="grid", parameters={"lr": {"values": [0.1]}}, project="p"):
        ...     plan = plan_sweep(resolve("sweep", context={}), resolve("run", context={}), run_name="r",
        ...                       action_name="a0")
        >>> plan.action, plan.config["name"], plan.target.project
        ('create', 'r-a0', 'p')
    """
    wants_download = bool(download_logs if download_logs is not None else sweep.get("download_logs"))
    target = sweep_target(sweep, run)
    if target.inherited:
        # The creator downloads a sweep's logs; a task reusing it only when its own decorator asks.
        return SweepPlan(
            "reuse", target, download_logs=bool(download_logs), reason="created by a parent task"
        )
    if run.get("mode") == "disabled":
        return SweepPlan(
            "skip", target, reason=f"W&B is disabled (mode='disabled' from {run.origin('mode')})"
        )
    missing = [name for name in ("method", "parameters") if not sweep.get(name)]
    if missing:
        raise WandbRunError(
            f"@wandb_sweep task {action_name!r} has no sweep configuration: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set; {_HOW_TO_CONFIGURE}"
        )
    config = sweep_dict(sweep.values)
    if not config.get("name"):
        config["name"] = f"{run_name}-{action_name}"
    return SweepPlan(
        "create",
        target,
        config,
        tuple(sweep.get("prior_runs") or ()),
        download_logs=wants_download,
        reason="new sweep",
    )


# --- carrying the plan out -----------------------------------------------------------------------

# wandb.sweep() exports the project and entity it was given as WANDB_PROJECT / WANDB_ENTITY for the
# rest of the process; restored afterwards so that they do not leak into unrelated runs and links.
_SWEEP_ENV_SIDE_EFFECTS = ("WANDB_PROJECT", "WANDB_ENTITY")


def create_sweep(plan: SweepPlan) -> str:
    """Create the planned sweep with ``wandb.sweep`` and return its id (blocks on the W&B server).

    Example:
        ```python
        sweep_id = create_sweep(plan)  # plan.action == "create"
        ```
    """
    import wandb

    from ._download_api import scrub_secrets

    target = plan.target
    where = f"{target.entity or '<default entity>'}/{target.project or '<default project>'}"
    try:
        with preserved_environ(*_SWEEP_ENV_SIDE_EFFECTS):
            sweep_id = wandb.sweep(
                sweep=plan.config,
                project=target.project,
                entity=target.entity,
                prior_runs=list(plan.prior_runs),
            )
    except Exception as exc:
        raise WandbRunError(
            f"could not create W&B sweep {plan.config.get('name')!r} in {where}: "
            f"{type(exc).__name__}: {scrub_secrets(str(exc))}"
        ) from None
    if not isinstance(sweep_id, str) or not sweep_id:
        raise WandbRunError(
            f"wandb.sweep returned no sweep id for sweep {plan.config.get('name')!r} in {where}"
        )
    return sweep_id


def _plan_for_task(
    sweep_layer: Layer, download_logs: bool | None, declared_env: DeclaredEnv = ()
) -> SweepPlan:
    import flyte

    ctx = flyte.ctx()
    if not ctx:
        raise WandbRunError("@wandb_sweep task wrapper called outside a Flyte task")
    # Read as the task's container sees the environment (its declared W&B variables), as its link.
    return plan_sweep(
        resolve("sweep", task=sweep_layer, declared_env=declared_env),
        resolve("run", declared_env=declared_env),
        run_name=ctx.action.run_name or "local",
        action_name=ctx.action.name,
        download_logs=download_logs,
    )


@contextmanager
def _published(plan: SweepPlan) -> Iterator[None]:
    """Make the sweep current for the task body and, through ``custom_context``, for its children."""
    import flyte

    from ._run import reset_sweep_id, set_sweep_id

    identity = plan.identity
    if identity is None:
        yield
        return
    token = set_sweep_id(identity.id)
    from ._fanout_channel import note_sweep_metric

    # The sweep's metric ranks the runs in the comparison of a fan-out this task starts.
    note_sweep_metric(plan.config.get("metric"))
    try:
        if plan.action == "create":
            with flyte.custom_context(**encode_sweep_identity(identity)):
                yield
        else:
            yield
    finally:
        reset_sweep_id(token)


def _log_skip(plan: SweepPlan) -> None:
    if plan.action == "skip":
        logger.info("no W&B sweep created: %s", plan.reason)


async def _download_async(plan: SweepPlan) -> None:
    identity = plan.identity
    if not plan.download_logs or identity is None:
        return
    from ._download_trace import download_sweep_after_task

    await download_sweep_after_task(identity)


def _download_sync(plan: SweepPlan) -> None:
    identity = plan.identity
    if not plan.download_logs or identity is None:
        return
    from ._download_trace import download_sweep_after_task_sync

    download_sweep_after_task_sync(identity)


def _wrap_sweep_function(
    fn: Callable[..., Any],
    sweep_layer: Layer,
    download_logs: bool | None,
    task_name: str = "",
    declared_env: DeclaredEnv = (),
) -> Callable[..., Any]:
    from ._lineage import task_in_progress

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_sweep_task(*args: Any, **kwargs: Any) -> Any:
            plan = _plan_for_task(sweep_layer, download_logs, declared_env)
            if plan.action == "create":
                # wandb.sweep waits on the W&B server: keep the event loop free meanwhile.
                plan = plan.with_id(await asyncio.to_thread(create_sweep, plan))
            _log_skip(plan)
            # Trials run by wandb.agent in its own threads find the task's identity there.
            with _published(plan), task_in_progress(task_name):
                result = await fn(*args, **kwargs)
            await _download_async(plan)
            return result

        return async_sweep_task

    @functools.wraps(fn)
    def sync_sweep_task(*args: Any, **kwargs: Any) -> Any:
        plan = _plan_for_task(sweep_layer, download_logs, declared_env)
        if plan.action == "create":
            plan = plan.with_id(create_sweep(plan))
        _log_skip(plan)
        with _published(plan), task_in_progress(task_name):
            result = fn(*args, **kwargs)
        _download_sync(plan)
        return result

    return sync_sweep_task


def sweep_layer_from_arguments(origin: str, **arguments: Any) -> Layer:
    """The task layer of ``@wandb_sweep`` arguments: sweep fields, the rest as extra sweep keys.

    Example:
        >>> lyr = sweep_layer_from_arguments("@wandb_sweep", project="p", early_terminate={"type": "asha"})
        >>> dict(lyr.values)
        {'project': 'p', 'kwargs': {'early_terminate': {'type': 'asha'}}}
    """
    from ._settings import ensure_json

    values, extra = SWEEP.split_arguments(arguments)
    check_no_credentials(values, origin, "")
    check_no_credentials(extra, origin, "")
    if extra:
        values["kwargs"] = ensure_json("kwargs", extra, origin)
    if "parameters" in values:
        values["parameters"] = ensure_json("parameters", values["parameters"], origin)
    return layer("task", SWEEP, SWEEP.validate(values, origin), origin)


def _decorate_sweep_task(task: Any, sweep_layer: Layer, download_logs: bool | None) -> Any:
    values = sweep_layer.values
    # The task's container sees its declared variables: its link and its sweep read them the same.
    declared = DeclaredEnvironment.of(task).wandb
    link = WandbSweep(project=values.get("project"), entity=values.get("entity"))._with_declared_env(declared)
    decorated = task.override(links=(*tuple(getattr(task, "links", ()) or ()), link))
    # Wrapping the task's function (a field of the task) rather than its execute method means
    # task.override(...) keeps the sweep behaviour.
    decorated.func = within_decorated(
        _wrap_sweep_function(task.func, sweep_layer, download_logs, task.name, declared),
        sweep_layer,
        declared_env=declared,
    )
    # task.override(env_vars=...) gives the container other variables: its link and sweep follow them.
    return follow_env_overrides(
        decorated, task.func, (link,), lambda new: _decorate_sweep_task(new, sweep_layer, download_logs)
    )


@overload
def wandb_sweep(_func: F) -> F: ...


@overload
def wandb_sweep(
    _func: None = None,
    *,
    project: str | None = None,
    entity: str | None = None,
    download_logs: bool | None = None,
    **kwargs: Any,
) -> Callable[[F], F]: ...


def wandb_sweep(
    _func: F | None = None,
    *,
    project: str | None = None,
    entity: str | None = None,
    download_logs: bool | None = None,
    **kwargs: Any,
) -> F | Callable[[F], F]:
    """Create a W&B sweep for a Flyte task, share it with the task's children, and link to it.

    Put it outside ``@env.task``. When the task starts, the sweep is created with ``wandb.sweep``
    from the sweep settings in effect (``wandb_sweep_config`` blocks or ``custom_context``, the
    ``[sweep]`` table of the configuration file, and this decorator's arguments, which win). Its id
    is then available in the task and in every child task through :func:`get_wandb_sweep_id`.
    A task whose parent already created a sweep reuses that sweep instead of creating another, so
    agent tasks can be decorated too (their links then point at the parent's sweep).

    Args:
        project: W&B project of the sweep; beats the sweep settings, then the run settings.
        entity: W&B entity of the sweep; same precedence as ``project``.
        download_logs: after the task, download the files of every run of the sweep (a Flyte trace
            returning a ``flyte.io.Dir``); defaults to the sweep settings' ``download_logs``. A
            failed download is logged as a warning and never fails the task.
        **kwargs: sweep settings (``method``, ``metric``, ``parameters``, ``name``, ``prior_runs``);
            any other keyword must be a key of a W&B sweep configuration (``early_terminate``,
            ``run_cap``, ...). Names and values are checked when the decorator is applied: an
            unknown name raises :class:`WandbConfigError` with the closest valid one.

    With ``mode="disabled"`` in the run settings no sweep is created and the body runs without one.

    Example:
        ```python
        import flyte
        import wandb
        from flyteplugins.wandb import get_wandb_sweep_id, wandb_init, wandb_sweep, wandb_sweep_config

        env = flyte.TaskEnvironment(name="tune")

        @wandb_init
        def objective() -> None:
            wandb.log({"loss": wandb.config.lr * 2})

        @wandb_sweep
        @env.task
        async def agent(count: int) -> None:
            wandb.agent(get_wandb_sweep_id(), function=objective, count=count)

        @wandb_sweep(project="demo", entity="team")
        @env.task
        async def tune() -> str:
            await agent(count=5)
            return get_wandb_sweep_id()

        flyte.with_runcontext(
            custom_context=wandb_sweep_config(method="random", parameters={"lr": {"min": 0.001, "max": 0.1}})
        ).run(tune)
        ```
    """
    origin = "@wandb_sweep(...)"
    sweep_layer = sweep_layer_from_arguments(
        origin, project=project, entity=entity, download_logs=download_logs, **kwargs
    )

    def decorator(func: F) -> F:
        from ._decorators import is_flyte_task

        if is_flyte_task(func):
            return cast(F, _decorate_sweep_task(func, sweep_layer, download_logs))
        raise TypeError(
            f"@wandb_sweep decorates Flyte function tasks (@env.task), not {type(func).__name__} "
            f"{getattr(func, '__name__', func)!r}: put it outside @env.task; for the objective run by "
            "wandb.agent use @wandb_init"
        )

    if _func is not None:
        return decorator(_func)
    return decorator
