"""``@wandb_init``: a W&B run around a Flyte task or a plain function, plus the task's link."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from ._compat import explicit_settings, settings_fields_set
from ._decorated import within_decorated
from ._distributed import ElasticTopology, distributed_links_spec, elastic_topology
from ._errors import WandbConfigError
from ._layers import Layer, layer, resolve
from ._link import Wandb
from ._rehearsal import DeclaredEnvironment
from ._run import RunScope, scope_for_function, scope_for_task
from ._settings import RUN, check_no_credentials
from ._signals import arm, guard
from ._task_override import follow_env_overrides
from ._types import RankScope, RunMode

if TYPE_CHECKING:
    from ._lineage import TaskLineage

__all__ = ["is_flyte_task", "task_layer_from_arguments", "wandb_init"]

logger = logging.getLogger("flyteplugins.wandb")

F = TypeVar("F", bound=Callable[..., Any])

# wandb.init() arguments that are first-class fields of the configuration (and of the link).
_FIRST_CLASS = ("id", "name", "tags", "config", "mode", "group", "notes", "job_type", "host")


def task_layer_from_arguments(origin: str, **arguments: Any) -> Layer:
    """The task layer of a decorator's arguments: first-class fields, the rest as extra kwargs.

    Example:
        >>> task_layer_from_arguments("@wandb_init(...)", project="p", save_code=True).values["kwargs"]
        {'save_code': True}
    """
    values, extra = RUN.split_arguments(arguments)
    settings = extra.get("settings")
    if settings is not None and not isinstance(settings, Mapping):
        # A wandb.Settings object: keep the fields the user set (its dump also holds wandb's
        # computed fields), so that the credential check below sees exactly what was given.
        if settings_fields_set(settings) is None:
            raise WandbConfigError("settings", settings, origin, "a dict or a wandb.Settings object")
        extra["settings"] = explicit_settings(settings)
    check_no_credentials(values, origin, "")
    check_no_credentials(extra, origin, "")
    if extra:
        values["kwargs"] = extra
    return layer("task", RUN, RUN.validate(values, origin), origin)


def is_flyte_task(obj: object) -> bool:
    """Whether ``obj`` is a Flyte function task (what ``@env.task`` returns)."""
    from ._compat import is_function_task

    return is_function_task(obj)


async def _after_async(scope: RunScope, failed: bool, download: bool) -> None:
    if scope.plan.action in ("reuse", "skip"):
        scope.finish(failed)
    else:
        await asyncio.to_thread(scope.finish, failed)
    if download and not failed and scope.active is not None and scope.active.owner:
        from ._download_trace import download_after_task

        await download_after_task(scope.active.identity)


def _after_sync(scope: RunScope, failed: bool, download: bool) -> None:
    scope.finish(failed)
    if download and not failed and scope.active is not None and scope.active.owner:
        from ._download_trace import download_after_task_sync

        download_after_task_sync(scope.active.identity)


def _begin_tab(scope: RunScope, report: tuple[str, bool] | None) -> Any:
    if report is None or scope.active is None:
        return None
    from ._report_tab import begin_tab

    return begin_tab(scope, *report)


def _begin_child(scope: RunScope, lineage: TaskLineage) -> Any:
    if scope.plan.parent_run is None or scope.active is None:
        return None
    from ._fanout_channel import begin_child

    return begin_child(scope, lineage.task_name or None)


def _announce(scope: RunScope, report: tuple[str, bool] | None) -> AbstractContextManager[None]:
    if report is None or not report[1] or scope.active is None:
        return nullcontext()
    from ._report_tab import tab_wanted

    if not tab_wanted(scope):
        return nullcontext()  # no W&B tab, so no comparison: children write no digest
    from ._fanout_channel import announce_digests

    return announce_digests(scope, report[1])


def _wrap(
    fn: Callable[..., Any],
    make_scope: Callable[[], RunScope],
    download: Callable[[RunScope], bool],
    lineage: TaskLineage,
    report: tuple[str, bool] | None = None,
) -> Callable[..., Any]:
    """Run ``fn`` inside the W&B run ``make_scope()`` plans, for a task or a plain function.

    ``report`` is a task's (short name, declared with ``report=True``): its report tab.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = make_scope()
            call = lineage.prepare(scope, args, kwargs)
            if scope.plan.action == "init":
                # wandb.init blocks for tens of milliseconds: keep the event loop free so that
                # concurrent sibling tasks start their runs side by side.
                await asyncio.to_thread(scope.start)
            else:
                scope.start()
            scope.activate()
            if call is not None:
                call.started(scope)
            tab = _begin_tab(scope, report)
            child = await asyncio.to_thread(_begin_child, scope, lineage) if scope.plan.parent_run else None
            failed = True
            try:
                with guard(scope), _announce(scope, report):
                    result = await fn(*args, **kwargs)
                failed = False
                if call is not None and call.wants_outputs:
                    await asyncio.to_thread(call.succeeded, scope, result)
            finally:
                scope.deactivate()
                if tab is not None:
                    tab.ended(failed)
                await _after_async(scope, failed, download(scope))
                if child is not None:
                    await asyncio.to_thread(child.finished)
                if tab is not None:
                    await tab.write_async(failed)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = make_scope()
        call = lineage.prepare(scope, args, kwargs)
        scope.start()
        scope.activate()
        if call is not None:
            call.started(scope)
        tab = _begin_tab(scope, report)
        child = _begin_child(scope, lineage)
        failed = True
        try:
            with guard(scope), _announce(scope, report):
                result = fn(*args, **kwargs)
            failed = False
            if call is not None:
                call.succeeded(scope, result)
        finally:
            scope.deactivate()
            if tab is not None:
                tab.ended(failed)
            _after_sync(scope, failed, download(scope))
            if child is not None:
                child.finished()
            if tab is not None:
                tab.write(failed)
        return result

    return sync_wrapper


def _wrap_task_function(
    fn: Callable[..., Any],
    task_layer: Layer,
    download_logs: bool | None,
    topology: ElasticTopology | None = None,
    declared: DeclaredEnvironment | None = None,
    lineage: TaskLineage | None = None,
    report: tuple[str, bool] | None = None,
) -> Callable[..., Any]:
    def wants_download(scope: RunScope) -> bool:
        return bool(download_logs if download_logs is not None else scope.resolved.get("download_logs"))

    from ._lineage import TaskLineage

    lineage = lineage or TaskLineage.for_function(fn)
    wrapper = _wrap(
        fn,
        lambda: scope_for_task(task_layer, topology, declared, lineage.task_name or None),
        wants_download,
        lineage,
        report,
    )
    return within_decorated(wrapper, task_layer, declared_env=declared.wandb if declared else ())


def _wrap_function(fn: Callable[..., Any], task_layer: Layer) -> Callable[..., Any]:
    # A plain function's run (e.g. a sweep trial) is not downloaded: there is no task to attach
    # the download to as a trace.
    from ._lineage import TaskLineage

    lineage = TaskLineage.for_function(fn)
    wrapper = _wrap(fn, lambda: scope_for_function(task_layer), lambda scope: False, lineage)
    return within_decorated(wrapper, task_layer, plain=True)


def _decorate_task(task: Any, task_layer: Layer, download_logs: bool | None) -> Any:
    from ._lineage import TaskLineage

    topology = elastic_topology(getattr(task, "plugin_config", None))
    lineage = TaskLineage.for_task(task, task_layer.values.get("log_outputs"))
    # The task's container sees its declared variables: its link and its run read them the same.
    declared = DeclaredEnvironment.of(task)
    at_decoration = resolve("run", task=task_layer, context={}, use_current_context=False)
    specs = distributed_links_spec(
        at_decoration.get("run_mode", "auto"), at_decoration.get("rank_scope", "global"), topology
    )
    values = task_layer.values
    links = tuple(
        Wandb(
            project=values.get("project"),
            entity=values.get("entity"),
            id=values.get("id"),
            **{k: values[k] for k in ("run_mode", "rank_scope", "host") if k in values},
            name=link_name,
            _is_distributed=bool(topology and topology.is_distributed),
            _worker_index=worker_index,
        )._with_task_layer(task_layer, declared.wandb)
        for link_name, worker_index in specs
    )
    decorated = task.override(links=(*tuple(getattr(task, "links", ()) or ()), *links))
    # Wrapping the task's function (a field of the task) rather than its execute method means
    # task.override(...) keeps the W&B behaviour, and Elastic runs the wrapper in every worker.
    # The "Weights & Biases" report tab, for tasks declared with report=True.
    report = (str(getattr(task, "short_name", None) or task.name), bool(getattr(task, "report", False)))
    decorated.func = _wrap_task_function(
        task.func, task_layer, download_logs, topology, declared, lineage, report
    )
    # task.override(env_vars=...) gives the container other variables: its link and run follow them.
    return follow_env_overrides(
        decorated, task.func, links, lambda new: _decorate_task(new, task_layer, download_logs)
    )


@overload
def wandb_init(_func: F) -> F: ...


@overload
def wandb_init(
    _func: None = None,
    *,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    download_logs: bool | None = None,
    log_inputs: bool | list[str] | None = None,
    log_outputs: bool | list[str] | None = None,
    project: str | None = None,
    entity: str | None = None,
    timeout: float | None = None,
    report_tab: bool | None = None,
    **kwargs: Any,
) -> Callable[[F], F]: ...


def wandb_init(
    _func: F | None = None,
    *,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    download_logs: bool | None = None,
    log_inputs: bool | list[str] | None = None,
    log_outputs: bool | list[str] | None = None,
    project: str | None = None,
    entity: str | None = None,
    timeout: float | None = None,
    report_tab: bool | None = None,
    **kwargs: Any,
) -> F | Callable[[F], F]:
    """Run a Flyte task (or a plain function) inside a W&B run, and link the task to it.

    Put it outside (above) ``@env.task``: below it, Flyte runs the W&B wrapper of a plain
    function as the task's body, and its first call warns with the fix. Arguments beat every
    other configuration layer; any other keyword must be a ``wandb.init()`` argument (``tags``,
    ``config``, ``mode``, ``group``, ``save_code``, ...). Names and values are checked here, when
    the decorator is applied: an unknown name raises :class:`WandbConfigError` with the closest
    valid one (``projcet`` -> did you mean ``project``?).

    - ``run_mode="auto"`` (default): attach to the parent task's run if there is one, else start one.
    - ``run_mode="new"``: always start the task's own run (id ``{run_name}-{action_name}``).
    - ``run_mode="shared"``: always write into the parent's run (an error if there is none).
    - ``rank_scope``: which ranks of a distributed task log (``global`` or ``worker``).
    - ``download_logs=True``: after the task, download the run's files as a Flyte trace.
    - ``log_inputs`` (default ``True``, or a list of input names): record the task's inputs in
      the run config; ``log_outputs=True`` (or a list of output names): log ``File``/``Dir``
      outputs as reference artifacts and other outputs in the run summary. See the Lineage page.
    - ``timeout``: seconds a W&B server may delay the task's run start and finish in total
      (default 30); after it the run continues offline, its data kept for ``wandb sync``.
    - ``report_tab=False``: no "Weights & Biases" tab in the task's Flyte report, while
      ``report=True`` keeps the task's own tabs (default ``True``).

    A task that raises finishes its run with exit code 1 and re-raises; a retried task resumes its
    run. On a plain function (e.g. a sweep objective run by ``wandb.agent``) it starts a run for
    the call, or writes to the run of the task it is called in.

    Example:
        ```python
        import flyte
        from flyteplugins.wandb import get_wandb_run, wandb_init

        env = flyte.TaskEnvironment(name="train")

        @wandb_init(project="demo", entity="team", tags=["baseline"])
        @env.task
        async def train(lr: float) -> float:
            run = get_wandb_run()
            run.log({"loss": 0.5})
            return 0.5
        ```
    """
    origin = "@wandb_init(...)"
    # Every name and value is checked here, when the decorator is applied (at the import of the
    # task's module), not when the run starts.
    task_layer = task_layer_from_arguments(
        origin,
        run_mode=run_mode,
        rank_scope=rank_scope,
        download_logs=download_logs,
        log_inputs=log_inputs,
        log_outputs=log_outputs,
        project=project,
        entity=entity,
        timeout=timeout,
        report_tab=report_tab,
        **kwargs,
    )

    def decorator(func: F) -> F:
        # A task body may run off the main thread (local runs, sync tasks): the signal handler
        # that finishes its run on SIGTERM/SIGINT is put in place here, on the main thread.
        arm()
        if is_flyte_task(func):
            return cast(F, _decorate_task(func, task_layer, download_logs))
        if hasattr(func, "func") and hasattr(func, "override"):
            raise TypeError("@wandb_init supports Flyte function tasks (@env.task) and plain functions")
        if not callable(func):
            raise TypeError(f"@wandb_init decorates a task or a function, not {type(func).__name__}")
        return cast(F, _wrap_function(func, task_layer))

    if _func is not None:
        return decorator(_func)
    return decorator
