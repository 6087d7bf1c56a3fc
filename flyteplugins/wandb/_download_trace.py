"""Downloads recorded as Flyte traces (the Flyte UI shows the folder), and the after-task hooks.

``@wandb_init(download_logs=True)`` and ``@wandb_sweep(download_logs=True)`` call the hooks after
the task; a failed download is one warning, never the task's failure.

Example:
    >>> callable(download_after_task_sync)
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from ._codec import RunIdentity, SweepIdentity
from ._download import download_wandb_run_dir, download_wandb_sweep_dirs
from ._download_api import api_path, scrub_secrets
from ._download_files import default_download_root

if TYPE_CHECKING:
    from flyte.io import Dir

__all__ = [
    "download_after_task",
    "download_after_task_sync",
    "download_sweep_after_task",
    "download_sweep_after_task_sync",
    "download_wandb_run_logs",
    "download_wandb_sweep_logs",
]

logger = logging.getLogger("flyteplugins.wandb")


# --- traced variants (the Flyte UI shows the downloaded folder) -----------------------------------

_traced: dict[str, Callable[..., Any]] = {}


def _build_traced() -> dict[str, Callable[..., Any]]:
    # flyte and flyte.io are imported here, on first use, so that importing this package stays cheap.
    if _traced:
        return _traced
    import asyncio

    import flyte
    from flyte.io import Dir

    async def download_wandb_run_logs(
        run_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        path = await asyncio.to_thread(
            download_wandb_run_dir, run_id, None, True, entity=entity, project=project
        )
        return await Dir.from_local(path)

    def download_wandb_run_logs_sync(
        run_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return Dir.from_local_sync(download_wandb_run_dir(run_id, None, True, entity=entity, project=project))

    async def download_wandb_sweep_logs(
        sweep_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return await Dir.from_local(await asyncio.to_thread(_download_sweep_root, sweep_id, entity, project))

    def download_wandb_sweep_logs_sync(
        sweep_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return Dir.from_local_sync(_download_sweep_root(sweep_id, entity, project))

    functions: dict[str, Callable[..., Any]] = {
        "run": download_wandb_run_logs,
        "run_sync": download_wandb_run_logs_sync,
        "sweep": download_wandb_sweep_logs,
        "sweep_sync": download_wandb_sweep_logs_sync,
    }
    for key, fn in functions.items():
        # Flyte reads a trace's inputs and output from its annotations; this module's annotations
        # are strings naming Dir, which is not importable from the module's globals.
        first = "run_id" if key.startswith("run") else "sweep_id"
        fn.__annotations__ = {first: str, "entity": Optional[str], "project": Optional[str], "return": Dir}  # noqa: UP045
        _traced[key] = flyte.trace(fn)
    return _traced


def _download_sweep_root(sweep_id: str, entity: str | None, project: str | None) -> str:
    # One folder per sweep, holding one folder per run: the Dir returned shows exactly this sweep.
    root = default_download_root() / f"sweep-{sweep_id}"
    download_wandb_sweep_dirs(sweep_id, str(root), True, entity=entity, project=project)
    return str(root)


async def download_wandb_run_logs(run_id: str, entity: str | None = None, project: str | None = None) -> Dir:
    """Download a W&B run's files, recorded as a Flyte trace; returns them as a ``flyte.io.Dir``.

    ``@wandb_init(download_logs=True)`` calls it after the task. In a task, the trace (and the folder)
    shows up in the Flyte UI; outside a task it is a plain download.

    Example:
        ```python
        @env.task
        async def fetch(run_id: str) -> flyte.io.Dir:
            return await download_wandb_run_logs(run_id, entity="team", project="demo")
        ```
    """
    result: Dir = await _build_traced()["run"](run_id, entity, project)
    return result


async def download_wandb_sweep_logs(
    sweep_id: str, entity: str | None = None, project: str | None = None
) -> Dir:
    """Download every run of a W&B sweep, recorded as a Flyte trace; returns a ``flyte.io.Dir``.

    The folder holds one sub-folder per run. ``@wandb_sweep(download_logs=True)`` calls it after the task.

    Example:
        ```python
        @env.task
        async def fetch(sweep_id: str) -> flyte.io.Dir:
            return await download_wandb_sweep_logs(sweep_id, entity="team", project="demo")
        ```
    """
    result: Dir = await _build_traced()["sweep"](sweep_id, entity, project)
    return result


# --- after a task: never raise -------------------------------------------------------------------


def _warn_failed(kind: str, label: str, exc: BaseException) -> None:
    logger.warning(
        "download_logs: could not download W&B %s %s (the task's result is kept): %s",
        kind,
        label,
        scrub_secrets(str(exc) or type(exc).__name__),
    )


async def download_after_task(identity: RunIdentity) -> None:
    """Download the task's run after the task succeeded; a failure is one warning, never an error.

    Example:
        ```python
        await download_after_task(RunIdentity("r1", "team", "demo"))
        ```
    """
    try:
        await download_wandb_run_logs(identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("run", api_path(identity.entity, identity.project, identity.id), exc)


def download_after_task_sync(identity: RunIdentity) -> None:
    """:func:`download_after_task` for synchronous tasks.

    Example:
        ```python
        download_after_task_sync(RunIdentity("r1", "team", "demo"))
        ```
    """
    try:
        if _can_record_traces():
            _build_traced()["run_sync"](identity.id, identity.entity, identity.project)
        else:
            # A process without a Flyte controller (a worker process of an Elastic task) cannot
            # record a trace: download all the same, and say where the files are.
            path = download_wandb_run_dir(identity.id, entity=identity.entity, project=identity.project)
            logger.warning(
                "W&B run %s downloaded to %s (no Flyte trace can be recorded here)", identity.id, path
            )
    except Exception as exc:
        _warn_failed("run", api_path(identity.entity, identity.project, identity.id), exc)


def _can_record_traces() -> bool:
    from ._compat import can_record_traces

    return can_record_traces()


async def download_sweep_after_task(identity: SweepIdentity) -> None:
    """Download every run of the task's sweep after the task succeeded; never raises.

    Example:
        ```python
        await download_sweep_after_task(SweepIdentity("s1", "team", "demo"))
        ```
    """
    try:
        await download_wandb_sweep_logs(identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("sweep", api_path(identity.entity, identity.project, identity.id), exc)


def download_sweep_after_task_sync(identity: SweepIdentity) -> None:
    """:func:`download_sweep_after_task` for synchronous tasks.

    Example:
        ```python
        download_sweep_after_task_sync(SweepIdentity("s1", "team", "demo"))
        ```
    """
    try:
        _build_traced()["sweep_sync"](identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("sweep", api_path(identity.entity, identity.project, identity.id), exc)
